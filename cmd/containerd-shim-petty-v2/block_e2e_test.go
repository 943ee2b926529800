package main

import (
	"context"
	"os"
	"os/exec"
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

// TestCRIBlockRootfs runs a pod through the CRI plugin with
// $PETTY_SHIM_ROOTFS=block: the pod sandbox boots the VM with its root
// file system as the drive, and the pod's app container, whose drive could
// only be hot-plugged, fails to start with an error naming the limitation;
// removing the pod leaves nothing on the host.
func TestCRIBlockRootfs(t *testing.T) {
	requireE2E(t)
	if _, err := exec.LookPath("crictl"); err != nil {
		t.Skip("crictl not found: " + crictlFix)
	}
	e := startContainerd(t, true, envRootfs+"="+rootfsBlock)
	ctx := testCtx(t)
	dir := t.TempDir()
	pod := map[string]any{
		"metadata":      map[string]any{"name": "petty-blk-pod", "namespace": "default", "uid": "petty-blk-pod-uid", "attempt": 0},
		"log_directory": filepath.Join(dir, "logs"),
		"linux": map[string]any{"security_context": map[string]any{
			"namespace_options": map[string]any{"network": 2}, // NODE: no CNI here
		}},
	}
	ctr := map[string]any{
		"metadata": map[string]any{"name": "app"},
		"image":    map[string]any{"image": testImage},
		"command":  []string{"sh", "-c", "sleep 60"},
		"log_path": "app.log",
	}
	podJSON, ctrJSON := filepath.Join(dir, "pod.json"), filepath.Join(dir, "ctr.json")
	writeJSON(t, podJSON, pod)
	writeJSON(t, ctrJSON, ctr)
	out, err := e.crictl(ctx, "runp", "--runtime", "petty", podJSON)
	if err != nil {
		t.Fatalf("crictl runp (the sandbox on a block root): %v\n%s", err, out)
	}
	podID := strings.TrimSpace(out)
	t.Cleanup(func() {
		e.crictl(context.Background(), "stopp", podID)
		e.crictl(context.Background(), "rmp", "-f", podID)
	})
	out, err = e.crictl(ctx, "create", podID, ctrJSON, podJSON)
	if err != nil {
		t.Fatalf("crictl create: %v\n%s", err, out)
	}
	ctrID := strings.TrimSpace(out)
	out, err = e.crictl(ctx, "start", ctrID)
	if err == nil {
		t.Errorf("crictl start of a second container in a block-mode pod succeeded: %s", out)
	} else if !strings.Contains(out, "hot-plug") {
		t.Errorf("crictl start failed without naming the limitation: %v\n%s", err, out)
	} else {
		t.Logf("crictl start of the app container: %s", strings.TrimSpace(out))
	}
	e.crictl(ctx, "rm", ctrID)
	if out, err := e.crictl(ctx, "stopp", podID); err != nil {
		t.Errorf("crictl stopp: %v\n%s", err, out)
	}
	if out, err := e.crictl(ctx, "rmp", podID); err != nil {
		t.Errorf("crictl rmp: %v\n%s", err, out)
	}
	waitNoLeftovers(t, e)
	if images, _ := filepath.Glob(filepath.Join(stateRoot, "*", "*"+rootImageSuffix)); len(images) > 0 {
		t.Errorf("root file system images left: %q", images)
	}
}
