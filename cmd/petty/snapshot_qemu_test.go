package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// TestQEMUSnapshotRestore: petty snapshot of a detached VM (which runs on),
// petty run --restore DIR -- CMD, and a detached clone; nothing is left.
func TestQEMUSnapshotRestore(t *testing.T) {
	h := newQEMUHarness(t)
	res := h.run(nil, append([]string{"run", "--vmm", "qemu", "--detach", "--name", "origin"}, qemuFlags...)...)
	if res.code != 0 {
		t.Fatalf("run --detach: code %d, stderr %q", res.code, res.stderr)
	}
	r := h.readRecord("origin")
	defer reapOrphan(t, r.SupervisorPID)
	if res := h.run(nil, "exec", "origin", "--", "sh", "-c", "echo from-origin > /tmp/mark"); res.code != 0 {
		t.Fatalf("exec: %d %q", res.code, res.stderr)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	if res := h.run(nil, "snapshot", "origin", snap); res.code != 0 {
		t.Fatalf("snapshot: code %d, stderr %q", res.code, res.stderr)
	}
	if res := h.run(nil, "snapshot", "nosuchvm", snap+"2"); res.code == 0 {
		t.Errorf("snapshot of a VM that does not exist succeeded")
	}
	if res := h.run(nil, "exec", "origin", "--", "cat", "/tmp/mark"); res.code != 0 || res.stdout != "from-origin\n" {
		t.Errorf("origin after the snapshot: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	res = h.run(nil, "run", "--restore", snap, "--", "sh", "-c", "cat /tmp/mark; exit 7")
	if res.code != 7 || res.stdout != "from-origin\n" {
		t.Errorf("run --restore: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := h.run(nil, "run", "--restore", snap, "--memory", "512", "--", "true"); res.code != exitUsage {
		t.Errorf("run --restore --memory: code %d, stderr %q; want a usage error", res.code, res.stderr)
	}
	if res := h.run(nil, "run", "--restore", snap, "--vmm", "firecracker", "--", "true"); res.code == 0 || !strings.Contains(res.stderr, "another vmm") {
		t.Errorf("run --restore --vmm firecracker: code %d, stderr %q; want the backend refused", res.code, res.stderr)
	}

	res = h.run(nil, "run", "--restore", snap, "--detach", "--name", "clone")
	if res.code != 0 || res.stdout != "clone\n" {
		t.Fatalf("run --restore --detach: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	rc := h.readRecord("clone")
	defer reapOrphan(t, rc.SupervisorPID)
	res = h.run(nil, "exec", "clone", "--", "sh", "-c", "cat /tmp/mark /proc/sys/kernel/hostname")
	if res.code != 0 || res.stdout != "from-origin\nclone\n" {
		t.Errorf("exec in the clone: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	h.stopAndCheckGone(t, "clone", rc)
	h.stopAndCheckGone(t, "origin", r)
}

// TestQEMUDebianSnapshot: the realistic case, the Debian image with its
// overlay root on a scratch disk that petty unlinked after the boot: a
// file on the writable layer and a background process of the origin are
// in a clone, python3 runs there, and the clone's writes stay its own. It
// logs cold boot and restore times (petty run --detach, wall clock).
func TestQEMUDebianSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Debian image (minutes the first time)")
	}
	h := newQEMUHarness(t)
	img := testutil.DebianImage(t)
	began := time.Now()
	res := h.run(nil, "run", "--vmm", "qemu", "--image", img.Dir, "--memory", "512", "--detach", "--name", "deb")
	if res.code != 0 {
		t.Fatalf("run --detach: code %d, stderr %q", res.code, res.stderr)
	}
	cold := time.Since(began)
	r := h.readRecord("deb")
	defer reapOrphan(t, r.SupervisorPID)
	if res := h.run(nil, "exec", "deb", "--", "sh", "-c", "echo layer > /root/mark; setsid sleep 100000 >/dev/null 2>&1 < /dev/null & echo $! > /root/bg.pid"); res.code != 0 {
		t.Fatalf("exec: %d %q", res.code, res.stderr)
	}
	snap := filepath.Join(t.TempDir(), "snap")
	began = time.Now()
	if res := h.run(nil, "snapshot", "deb", snap); res.code != 0 {
		t.Fatalf("snapshot: code %d, stderr %q", res.code, res.stderr)
	}
	took := time.Since(began)
	began = time.Now()
	res = h.run(nil, "run", "--restore", snap, "--detach", "--name", "debclone")
	if res.code != 0 {
		t.Fatalf("run --restore --detach: code %d, stderr %q", res.code, res.stderr)
	}
	restored := time.Since(began)
	rc := h.readRecord("debclone")
	defer reapOrphan(t, rc.SupervisorPID)
	t.Logf("Debian image, QEMU/TCG, petty wall clock: cold boot to agent ready %v, snapshot %v, restore to agent ready (refreshed) %v",
		cold.Round(time.Millisecond), took.Round(time.Millisecond), restored.Round(time.Millisecond))
	res = h.run(nil, "exec", "debclone", "--", "sh", "-c", `cat /root/mark; kill -0 $(cat /root/bg.pid) && echo bg; python3 -c 'print(6*7)'; hostname`)
	if res.code != 0 || res.stdout != "layer\nbg\n42\ndebclone\n" {
		t.Errorf("exec in the clone: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := h.run(nil, "exec", "debclone", "--", "sh", "-c", "echo clone > /root/mark; sync"); res.code != 0 {
		t.Errorf("exec in the clone: %d %q", res.code, res.stderr)
	}
	if res := h.run(nil, "exec", "deb", "--", "cat", "/root/mark"); res.code != 0 || res.stdout != "layer\n" {
		t.Errorf("origin after the clone wrote: code %d, stdout %q", res.code, res.stdout)
	}
	h.stopAndCheckGone(t, "debclone", rc)
	h.stopAndCheckGone(t, "deb", r)
}
