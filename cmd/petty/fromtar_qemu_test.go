package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestQEMUFromTarImage builds an image with `petty image build --from-tar`
// from a tarball of a static busybox made here (bin/busybox and bin/sh,
// nothing else: no /etc, /dev or /proc) and boots it on a real QEMU guest:
// the agent stacks it below a 16 MiB scratch disk and runs the command in
// it. The command then fills the scratch disk: the write fails with
// ENOSPC, and the sandbox goes on: the same shell deletes the file, writes
// again and exits 0 through the agent.
func TestQEMUFromTarImage(t *testing.T) {
	h := newQEMUHarness(t)
	tarball := busyboxTarball(t)
	cache := t.TempDir()
	start := time.Now()
	res := h.run(nil, "image", "build", "--from-tar", tarball, "--name", "bb", "--cache", cache)
	if res.code != 0 {
		t.Fatalf("image build --from-tar: code %d, stderr %q", res.code, res.stderr)
	}
	t.Logf("image build --from-tar: %v", time.Since(start))
	img := filepath.Join(cache, "images", "bb")
	run := []string{"run", "--image", img, "--vmm", "qemu", "--memory", "256", "--vcpus", "1", "--disk-size", "16MiB", "--"}

	start = time.Now()
	res = h.run(nil, append(run, "sh", "-c", `busybox grep " / " /proc/mounts; busybox ls /bin; echo from-tar`)...)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) < 3 || !strings.HasPrefix(lines[0], "overlay / overlay ") || lines[len(lines)-1] != "from-tar" {
		t.Fatalf("boot: code %d, stdout %q, stderr %q; want the tarball's tree as an overlay root", res.code, res.stdout, res.stderr)
	}
	t.Logf("boot and run: %v", time.Since(start))

	const fill = `busybox dd if=/dev/zero of=/big bs=1M count=64 2>&1; echo "dd exit $?"; ` +
		`busybox rm /big && echo again > /again && busybox cat /again`
	res = h.run(nil, append(run, "sh", "-c", fill)...)
	if res.code != 0 || !strings.Contains(res.stdout, "No space left on device") || strings.Contains(res.stdout, "dd exit 0") ||
		!strings.HasSuffix(res.stdout, "again\n") {
		t.Errorf("filling the scratch disk: code %d, stdout %q, stderr %q; want ENOSPC for dd, then a working root", res.code, res.stdout, res.stderr)
	}
}
