package qemu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setVar points a package path variable elsewhere for one test.
func setVar(t *testing.T, v *string, value string) {
	t.Helper()
	old := *v
	*v = value
	t.Cleanup(func() { *v = old })
}

func TestKVMUsable(t *testing.T) {
	dir := t.TempDir()
	t.Run("pvm", func(t *testing.T) {
		setVar(t, &kvmPVMModule, dir) // exists
		ok, why := KVMUsable()
		if ok || why != "nested PVM KVM (kvm_pvm loaded): stock guest kernels hang; using TCG" {
			t.Errorf("KVMUsable = %v, %q", ok, why)
		}
	})
	t.Run("no device", func(t *testing.T) {
		setVar(t, &kvmPVMModule, filepath.Join(dir, "absent"))
		setVar(t, &kvmDevice, filepath.Join(dir, "kvm"))
		ok, why := KVMUsable()
		if ok || !strings.Contains(why, "cannot open") || !strings.HasSuffix(why, "using TCG") {
			t.Errorf("KVMUsable = %v, %q", ok, why)
		}
	})
	t.Run("not kvm", func(t *testing.T) {
		setVar(t, &kvmPVMModule, filepath.Join(dir, "absent"))
		setVar(t, &kvmDevice, "/dev/null") // opens, but the ioctl fails
		if ok, why := KVMUsable(); ok || !strings.Contains(why, "KVM_GET_API_VERSION") {
			t.Errorf("KVMUsable = %v, %q", ok, why)
		}
	})
}

func TestVhostAvailable(t *testing.T) {
	regular := filepath.Join(t.TempDir(), "vhost-vsock")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	setVar(t, &vhostVsockDevice, regular)
	setVar(t, &vhostNetDevice, filepath.Join(t.TempDir(), "absent"))
	if VhostVsockAvailable() {
		t.Error("a regular file counts as /dev/vhost-vsock")
	}
	if VhostNetAvailable() {
		t.Error("a missing /dev/vhost-net counts as available")
	}
	setVar(t, &vhostVsockDevice, "/dev/null") // a character device
	if !VhostVsockAvailable() {
		t.Error("a usable character device does not count")
	}
}

func TestHostTSCkHz(t *testing.T) {
	dir := t.TempDir()
	cpuinfo := filepath.Join(dir, "cpuinfo")
	if err := os.WriteFile(cpuinfo, []byte("processor\t: 0\nmodel name\t: x\ncpu MHz\t\t: 2893.202\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setVar(t, &cpuinfoPath, cpuinfo)
	setVar(t, &tscFreqPath, filepath.Join(dir, "absent"))
	if got := HostTSCkHz(); got != 2893202 {
		t.Errorf("HostTSCkHz from cpuinfo = %d, want 2893202", got)
	}
	tsc := filepath.Join(dir, "tsc_freq_khz")
	if err := os.WriteFile(tsc, []byte("2893000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	setVar(t, &tscFreqPath, tsc)
	if got := HostTSCkHz(); got != 2893000 {
		t.Errorf("HostTSCkHz from tsc_freq_khz = %d, want 2893000", got)
	}
	setVar(t, &tscFreqPath, filepath.Join(dir, "absent"))
	setVar(t, &cpuinfoPath, filepath.Join(dir, "absent"))
	if got := HostTSCkHz(); got != 0 {
		t.Errorf("HostTSCkHz with nothing to read = %d, want 0", got)
	}
}

func TestVersion(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "qemu")
	script := "#!/bin/sh\necho 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)'\necho 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers'\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if v, err := Version(fake); err != nil || v != "7.2.19" {
		t.Errorf("Version = %q, %v", v, err)
	}
	if _, err := Version(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("Version of a missing binary succeeded")
	}
	if bin, err := FindBinary(); err == nil {
		v, err := Version(bin)
		if err != nil {
			t.Errorf("Version(%s): %v", bin, err)
		}
		t.Logf("%s: version %s", bin, v)
	}
}

func TestArgsEscaping(t *testing.T) {
	s := Spec{
		Name: "a,b", Accel: AccelTCG, VCPUs: 1, MemoryMiB: 128,
		Kernel: "/k,1", Cmdline: "console=ttyS0",
		Drives:    []Drive{{ID: "d", Path: "/x,y.img"}},
		Net:       &NIC{Tap: "t,ap"},
		QMPSocket: "/run/q,mp.sock",
	}
	args := strings.Join(s.Args(), " ")
	for _, want := range []string{"-name a,,b ", "-kernel /k,1 ", "file=/x,,y.img,", "ifname=t,,ap,", "path=/run/q,,mp.sock,"} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
}
