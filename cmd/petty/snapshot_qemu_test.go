package main

import (
	"path/filepath"
	"strings"
	"testing"
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
