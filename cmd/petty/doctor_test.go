package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/vm"
)

// diagnosis is what a check concluded, without its host-specific detail.
type diagnosis struct {
	OK, Optional bool
	Fix          string
}

// diagnose runs h's checks and returns them by name, failing on a
// duplicate name.
func diagnose(t *testing.T, h doctorHost) map[string]diagnosis {
	t.Helper()
	got := map[string]diagnosis{}
	for _, c := range h.checks() {
		if _, dup := got[c.name]; dup {
			t.Fatalf("two checks named %q", c.name)
		}
		d := diagnosis{OK: c.ok, Optional: c.optional}
		if !c.ok {
			d.Fix = c.fix
		}
		got[c.name] = d
	}
	return got
}

// TestDoctor runs petty doctor's checks on hosts the test controls: one
// where nothing petty needs is found, one where everything is. (KVM and
// vhost-vsock are the machine's own and only checked to be reported.)
func TestDoctor(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	notDev := filepath.Join(dir, "tun")
	if err := os.WriteFile(notDev, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("nothing", func(t *testing.T) {
		t.Setenv("PATH", empty)
		t.Setenv(vm.FirecrackerBinEnv, "")
		t.Setenv("XDG_CACHE_HOME", empty)
		got := diagnose(t, doctorHost{
			busybox:             filepath.Join(empty, "busybox"),
			kernelGlob:          filepath.Join(empty, "vmlinuz-*"),
			tun:                 notDev,
			kernelSourceTarball: filepath.Join(empty, "linux-source-6.1.tar.xz"),
		})
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]diagnosis{
			checkFirecracker: {Optional: true, Fix: "download firecracker v1.16 from https://github.com/firecracker-microvm/firecracker/releases into $PATH, or set $PETTY_FIRECRACKER_BIN (petty: --firecracker-bin)"},
			checkQEMU:        {Fix: "apt-get install qemu-system-x86"},
			checkTun:         {Optional: true, Fix: "modprobe tun"},
			checkBusybox:     {Fix: "apt-get install busybox-static"},
			checkKernel:      {Fix: "apt-get install linux-image-cloud-amd64 (or pass --kernel)"},
			checkAgent:       {Fix: "CGO_ENABLED=0 go build -o " + filepath.Join(filepath.Dir(exe), agentBinary) + " github.com/pettyvm/petty/cmd/petty-agent"},
			checkCache:       {Optional: true, Fix: "petty image build (petty run builds it on first use)"},
			checkFCKernel:    {Optional: true, Fix: "petty image build --kernel-source (≈9 min on 2 cores; petty run never compiles it)"},
		}
		checkDiagnosis(t, got, want)
	})

	t.Run("everything", func(t *testing.T) {
		if _, err := os.Stat("/bin/busybox"); err != nil {
			t.Skip("no /bin/busybox: apt-get install busybox-static")
		}
		qemuBin, err := qemu.FindBinary()
		if err != nil {
			t.Skipf("%v: %s", err, testutil.QEMUFix)
		}
		agent, fake := testutil.Agent(t), testutil.FakeFirecracker(t) // built before $PATH changes
		bin := filepath.Join(dir, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{agent, qemuBin} {
			if err := os.Symlink(p, filepath.Join(bin, filepath.Base(p))); err != nil {
				t.Fatal(err)
			}
		}
		t.Setenv("PATH", bin)
		t.Setenv(vm.FirecrackerBinEnv, fake)
		cache := filepath.Join(dir, "cache")
		if err := os.MkdirAll(filepath.Join(cache, "petty", "0123abcd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cache, "petty", "0123abcd", "initrd.img"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Setenv("XDG_CACHE_HOME", cache)
		kernel := filepath.Join(dir, "vmlinuz-6.1.0-99-cloud-amd64")
		if err := os.WriteFile(kernel, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		tarball := filepath.Join(dir, "linux-source-6.1.tar.xz")
		if err := os.WriteFile(tarball, []byte("source"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Store a kernel where a compile would have.
		_, err = image.CachedSourceKernel(image.Options{KernelSourceTarball: tarball})
		var nc *image.KernelNotCompiledError
		if !errors.As(err, &nc) {
			t.Fatalf("CachedSourceKernel before the compile = %v, want a *KernelNotCompiledError", err)
		}
		if err := os.MkdirAll(filepath.Dir(nc.Vmlinux), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(nc.Vmlinux, []byte("vmlinux"), 0o644); err != nil {
			t.Fatal(err)
		}
		got := diagnose(t, doctorHost{
			busybox:             "/bin/busybox",
			kernelGlob:          filepath.Join(dir, "vmlinuz-*-cloud-amd64"),
			tun:                 os.DevNull, // a character device
			kernelSourceTarball: tarball,
		})
		want := map[string]diagnosis{
			checkFirecracker: {OK: true, Optional: true},
			checkQEMU:        {OK: true},
			checkQEMUSeccomp: {OK: true, Optional: true},
			checkTun:         {OK: true, Optional: true},
			checkBusybox:     {OK: true},
			checkKernel:      {OK: true},
			checkAgent:       {OK: true},
			checkCache:       {OK: true, Optional: true},
			checkFCKernel:    {OK: true, Optional: true},
		}
		checkDiagnosis(t, got, want)
	})
}

// checkDiagnosis compares got with want, where KVM and vhost-vsock are
// only required to be there.
func checkDiagnosis(t *testing.T, got, want map[string]diagnosis) {
	t.Helper()
	for _, name := range []string{checkKVM, checkVhostVsock} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s check", name)
		}
		delete(got, name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diagnosis (-want +got):\n%s", diff)
	}
}

func TestPrintChecks(t *testing.T) {
	var b bytes.Buffer
	printChecks(&b, []check{
		{name: "qemu", ok: true, detail: "/usr/bin/qemu-system-x86_64: 7.2.19", fix: "unused"},
		{name: "firecracker", detail: "not found", fix: "get it", optional: true},
		{name: "busybox-static", detail: "/bin/busybox: no such file", fix: "apt-get install busybox-static"},
	})
	want := `ok       qemu             /usr/bin/qemu-system-x86_64: 7.2.19
warn     firecracker      not found
                          fix: get it
MISSING  busybox-static   /bin/busybox: no such file
                          fix: apt-get install busybox-static
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("printChecks (-want +got):\n%s", diff)
	}
}
