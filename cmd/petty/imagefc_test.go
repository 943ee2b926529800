package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/testutil"
)

// TestRunStoreImageFirecrackerConfig boots an image laid out as the store
// writes a Debian image (kernel, initramfs, root file system) under the
// strict fake firecracker and checks the configuration the VMM accepted:
// the initramfs, the base as the read-only root drive, the VM's own
// scratch disk writable as the second drive, and the kernel parameters
// with which the initramfs's agent stacks them.
func TestRunStoreImageFirecrackerConfig(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not found: apt-get install e2fsprogs")
	}
	h := newHarness(t)
	dir := h.writeImageDir()
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrd, []byte("initramfs"), 0o444); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"format": 1, "name": "debianlike", "origin": "debian", "kernel": "vmlinux", "initrd": "initrd.cpio", "rootfs": "rootfs.ext4"})
	if err := os.WriteFile(filepath.Join(dir, manifestName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The fake guest copies the --config-file its VMM (its parent) was
	// started with, then runs the agent as the harness's guest does.
	seen := filepath.Join(t.TempDir(), "firecracker.json")
	guest := `cfg=$(tr '\0' '\n' </proc/$PPID/cmdline | sed -n '/^--config-file$/{n;p;}') && cp "$cfg" '` + seen + `' && ` +
		`exec '` + testutil.Agent(t) + `' --listen unix://$FAKEFC_GUEST_DIR/1024`
	c, stdout, stderr := h.command(nil, "run", "--vmm", "firecracker", "--firecracker-bin", h.fake, "--image", dir, "--disk-size", "64MiB", "--", "echo", "up")
	c.Env = append(append([]string(nil), h.env...), "FAKEFC_GUEST_CMD="+guest)
	if err := c.Run(); err != nil || stdout.String() != "up\n" {
		t.Fatalf("run: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	raw, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the fake guest did not copy the VMM's config: %v", err)
	}
	var cfg firecracker.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if cfg.BootSource.InitrdPath != initrd {
		t.Errorf("initrd %q, want %s", cfg.BootSource.InitrdPath, initrd)
	}
	if args := cfg.BootSource.BootArgs; !strings.Contains(args, "petty.root="+baseDevice) || !strings.Contains(args, "petty.scratch="+scratchDevice) {
		t.Errorf("boot args %q lack petty.root=%s petty.scratch=%s", args, baseDevice, scratchDevice)
	}
	if len(cfg.Drives) != 2 {
		t.Fatalf("drives %+v, want the base and the scratch disk", cfg.Drives)
	}
	base, scratch := cfg.Drives[0], cfg.Drives[1]
	if base.PathOnHost != filepath.Join(dir, "rootfs.ext4") || !base.IsRootDevice || base.IsReadOnly == nil || !*base.IsReadOnly {
		t.Errorf("first drive %+v (read-only %v), want %s as the read-only root device", base, base.IsReadOnly, filepath.Join(dir, "rootfs.ext4"))
	}
	if scratch.DriveID != image.ScratchDriveID || scratch.IsRootDevice || (scratch.IsReadOnly != nil && *scratch.IsReadOnly) {
		t.Errorf("second drive %+v, want the writable scratch disk", scratch)
	}
	// The VMM opens a writable drive through a link in its run dir (so a
	// clone restored from a snapshot can put its own copy there); the
	// link points at the scratch file, which is gone once the VM is.
	if want := "drive-" + image.ScratchDriveID + ".img"; scratch.PathOnHost != want {
		t.Errorf("scratch disk opened as %s, want the run dir's link %s", scratch.PathOnHost, want)
	}
	left, err := filepath.Glob(filepath.Join(h.runDir, "*", image.ScratchPattern))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(h.runDir, image.ScratchPattern))
	if left = append(left, more...); len(left) > 0 {
		t.Errorf("scratch disks left behind: %v", left)
	}
}
