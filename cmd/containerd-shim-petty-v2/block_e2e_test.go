package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCtrBlockRootfs runs containers with the real ctr under QEMU with
// $PETTY_SHIM_ROOTFS=block: the container's root file system reaches the
// guest as an ext4 image on a virtio block device (the Firecracker path),
// the container runs on the guest's kernel, writes and reads files in its
// root, and the image goes with the container.
func TestCtrBlockRootfs(t *testing.T) {
	e := startContainerd(t, false, envRootfs+"="+rootfsBlock)

	t.Run("uname", func(t *testing.T) {
		out, err := e.run(testCtx(t), "blkuname", "uname", "-r").CombinedOutput()
		if err != nil {
			t.Fatalf("ctr run: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, "-cloud-amd64") {
			t.Errorf("uname -r in the container = %q, want the guest's Debian cloud kernel", got)
		}
		waitNoLeftovers(t, e)
	})

	t.Run("write and read on the block root", func(t *testing.T) {
		// The root is the drive (/dev/vda, ext4), not virtio-fs; a file
		// written in the container reads back, and so does busybox from the
		// image (the root's content made it into the image).
		script := `set -e
awk '$1 == "/dev/vda" { print $3 }' /proc/mounts
echo written-in-the-container > /petty-block-test
sync
cat /petty-block-test
ls /bin/busybox`
		out, err := e.run(testCtx(t), "blkfile", "sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr run: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		want := []string{"ext4", "written-in-the-container", "/bin/busybox"}
		if len(lines) != len(want) {
			t.Fatalf("output %q, want lines %q", out, want)
		}
		for i := range want {
			if lines[i] != want[i] {
				t.Errorf("line %d = %q, want %q (output %q)", i, lines[i], want[i], out)
			}
		}
		waitNoLeftovers(t, e)
		images, _ := filepath.Glob(filepath.Join(stateRoot, "*", "*"+rootImageSuffix))
		if len(images) > 0 {
			t.Errorf("root file system images left: %q", images)
		}
		if _, err := os.Stat(filepath.Join(stateRoot, testNamespace+"-blkfile")); err == nil {
			t.Errorf("the pod directory is left")
		}
	})
}
