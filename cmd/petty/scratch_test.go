package main

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pettyvm/petty/image"
)

// TestMakeScratchDisk checks the scratch disk: a sparse file of the size
// asked for, formatted ext4, private to its owner.
func TestMakeScratchDisk(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not found: apt-get install e2fsprogs")
	}
	root := filepath.Join(t.TempDir(), "run")
	const size = 2 << 30
	p, err := image.NewScratchDisk(t.Context(), root, size)
	if err != nil {
		t.Fatal(err)
	}
	defer image.RemoveScratchDisk(p)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p) != root || fi.Size() != size || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: size %d, mode %v; want %d bytes, 0600, in %s", p, fi.Size(), fi.Mode(), size, root)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 64<<20 {
		t.Errorf("%d bytes allocated, want a sparse file", used)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+0x38); err != nil || binary.LittleEndian.Uint16(magic[:]) != 0xEF53 {
		t.Errorf("no ext4 superblock magic (%x, %v)", magic, err)
	}
	image.RemoveScratchDisk(p)
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("removeScratchDisk left %s (%v)", p, err)
	}
}

// writeImageDir writes an image directory for the fake firecracker: a
// manifest naming the harness's kernel and a root file system.
func (h *harness) writeImageDir() string {
	h.t.Helper()
	dir := h.t.TempDir()
	if err := os.Symlink(h.kernel, filepath.Join(dir, "vmlinux")); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs.ext4"), []byte("base"), 0o444); err != nil {
		h.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"format": 1, "name": "fake", "kernel": "vmlinux", "rootfs": "rootfs.ext4"})
	if err := os.WriteFile(filepath.Join(dir, manifestName), b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return dir
}

// TestRunImageScratchLifecycle boots an image with a root file system
// under the fake firecracker: the run succeeds with the base read-only and
// the scratch disk is gone afterwards (checkClean), also when the VMM
// fails.
func TestRunImageScratchLifecycle(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not found: apt-get install e2fsprogs")
	}
	h := newHarness(t)
	img := h.writeImageDir()
	flags := []string{"run", "--vmm", "firecracker", "--firecracker-bin", h.fake, "--image", img, "--disk-size", "64MiB"}
	res := h.run(nil, append(flags, "--env", "A=b c", "--", "sh", "-c", `echo "$A"`)...)
	if res.code != 0 || res.stdout != "b c\n" {
		t.Errorf("run: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	c, _, stderr := h.command(nil, append(flags, "--", "true")...)
	c.Env = append(append([]string(nil), h.env...), "FAKEFC_CRASH_AT_START=1")
	if err := c.Run(); err == nil {
		t.Errorf("run with a crashing VMM succeeded; stderr %q", stderr)
	}
}

// TestRunImageUsage checks the usage errors of the image and exec flags.
func TestRunImageUsage(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"image and kernel", []string{"run", "--image", "x", "--kernel", h.kernel, "--", "true"}, "exclude each other"},
		{"tiny disk", []string{"run", "--disk-size", "1MiB", "--", "true"}, "--disk-size"},
		{"bad disk size", []string{"run", "--disk-size", "lots", "--", "true"}, "--disk-size"},
		{"env without =", []string{"run", "--env", "NOVALUE", "--", "true"}, "KEY=VALUE"},
		{"negative timeout", []string{"run", "--timeout", "-1s", "--", "true"}, "--timeout"},
		{"exec flags on detach", []string{"run", "--detach", "--user", "user"}, "petty exec"},
		{"exec env without =", []string{"exec", "--env", "=x", "box", "--", "true"}, "KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.run(nil, tt.args...)
			if res.code != 2 || !strings.Contains(res.stderr, tt.want) {
				t.Errorf("petty %v: code %d, stderr %q; want 2 and %q", tt.args, res.code, res.stderr, tt.want)
			}
		})
	}
}
