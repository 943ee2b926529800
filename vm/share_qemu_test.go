package vm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// virtiofsdPath is QEMU's virtiofsd in Debian 12 (package qemu-system-common).
const virtiofsdPath = "/usr/lib/qemu/virtiofsd"

// TestQEMUShare boots a guest with a host directory shared through
// virtio-fs and checks that the guest mounts it, reads the host's file and
// that its writes reach the host, with no copy.
func TestQEMUShare(t *testing.T) {
	cfg := qemuConfig(t)
	if _, err := os.Stat(virtiofsdPath); err != nil || os.Geteuid() != 0 {
		t.Skipf("needs root and %s (apt-get install qemu-system-x86)", virtiofsdPath)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testutil.ShortTempDir(t), "fs.sock")
	fsd := exec.Command(virtiofsdPath, "--socket-path="+sock, "-o", "source="+dir, "-o", "cache=none", "-o", "sandbox=chroot")
	fsd.Stderr = testWriter{t}
	if err := fsd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fsd.Process.Kill()
		fsd.Wait()
	})
	for i := 0; i < 100; i++ { // virtiofsd creates its socket after start
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cfg.Shares = []Share{{Tag: "hostdir", Socket: sock}}
	m, c := startQEMU(t, cfg)
	run(t, c, "mkdir", "-p", "/mnt/host")
	run(t, c, "mount", "-t", "virtiofs", "hostdir", "/mnt/host")
	if got := run(t, c, "cat", "/mnt/host/hello"); got != "from the host\n" {
		t.Errorf("guest read %q", got)
	}
	run(t, c, "sh", "-c", "echo from the guest > /mnt/host/back")
	if b, err := os.ReadFile(filepath.Join(dir, "back")); err != nil || string(b) != "from the guest\n" {
		t.Errorf("host read %q, %v", b, err)
	}
	run(t, c, "umount", "/mnt/host")
	// Its RAM is qemu.Spec's memfd, not a memory file: no snapshot.
	if err := m.Snapshot(t.Context(), filepath.Join(t.TempDir(), "snap")); !errors.Is(err, ErrSnapshotUnsupported) {
		t.Errorf("Snapshot of a VM with shares: %v, want ErrSnapshotUnsupported", err)
	}
	shutdown(t, m)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestShareValidate(t *testing.T) {
	base := Config{VMM: QEMU, Kernel: "/dev/null"}
	tests := []struct {
		name   string
		mod    func(*Config)
		fields []string
	}{
		{name: "ok", mod: func(c *Config) { c.Shares = []Share{{Tag: "a", Socket: "/s"}} }},
		{name: "firecracker", mod: func(c *Config) { c.VMM = Firecracker; c.Shares = []Share{{Tag: "a", Socket: "/s"}} }, fields: []string{"Shares"}},
		{name: "bad tag", mod: func(c *Config) { c.Shares = []Share{{Tag: "a b", Socket: "/s"}} }, fields: []string{"Shares[0].Tag"}},
		{name: "duplicate", mod: func(c *Config) { c.Shares = []Share{{Tag: "a", Socket: "/s"}, {Tag: "a", Socket: "/t"}} }, fields: []string{"Shares[1].Tag"}},
		{name: "no socket", mod: func(c *Config) { c.Shares = []Share{{Tag: "a"}} }, fields: []string{"Shares[0].Socket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			var v validator
			d := c.withDefaults()
			v.shares(&d)
			var got []string
			for _, err := range v.errs {
				got = append(got, err.(*FieldError).Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields %v, want %v", got, tt.fields)
			}
		})
	}
}
