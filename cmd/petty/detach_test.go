package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// readRecord returns the state file of the detached VM name.
func (h *harness) readRecord(name string) record {
	h.t.Helper()
	data, err := os.ReadFile(filepath.Join(h.stateDir, name+".json"))
	if err != nil {
		h.t.Fatal(err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

func TestDetachCycle(t *testing.T) {
	h := newHarness(t)
	res := h.run(nil, append([]string{"run", "--detach", "--name", "box"}, h.vmFlags()...)...)
	if res.code != 0 || res.stdout != "box\n" {
		t.Fatalf("run --detach: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	r := h.readRecord("box")
	defer reapOrphan(t, r.SupervisorPID)
	if !testutil.Alive(r.PID) || !testutil.Alive(r.SupervisorPID) || r.RunDir != filepath.Join(h.runDir, r.ID) {
		t.Fatalf("record %+v: want a live VMM and supervisor, and the run dir %s/ID", r, h.runDir)
	}

	// The name is taken.
	if res := h.run(nil, append([]string{"run", "--detach", "--name", "box"}, h.vmFlags()...)...); res.code != 1 || !strings.Contains(res.stderr, "already exists") {
		t.Errorf("second run --detach --name box: code %d, stderr %q", res.code, res.stderr)
	}

	res = h.run(nil, "ls")
	if res.code != 0 || !regexpLine(res.stdout, "box", r.ID, "firecracker", "running") {
		t.Errorf("ls: code %d, stdout:\n%s", res.code, res.stdout)
	}

	res = h.run(nil, "exec", "box", "--", "sh", "-c", "echo hi; echo err >&2; exit 4")
	if res.code != 4 || res.stdout != "hi\n" || res.stderr != "err\n" {
		t.Errorf("exec: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = h.run(strings.NewReader("piped\n"), "exec", "box", "cat")
	if res.code != 0 || res.stdout != "piped\n" {
		t.Errorf("exec cat: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}

	h.stopAndCheckGone(t, "box", r)
	if res := h.run(nil, "exec", "box", "--", "true"); res.code != 1 {
		t.Errorf("exec after stop: code %d, want 1", res.code)
	}
}

func TestDetachRm(t *testing.T) {
	h := newHarness(t)
	res := h.run(nil, append([]string{"run", "--detach"}, h.vmFlags()...)...)
	if res.code != 0 {
		t.Fatalf("run --detach: code %d, stderr %q", res.code, res.stderr)
	}
	name := strings.TrimSpace(res.stdout)
	r := h.readRecord(name)
	defer reapOrphan(t, r.SupervisorPID)
	if res := h.run(nil, "rm", name); res.code != 0 {
		t.Fatalf("rm: code %d, stderr %q", res.code, res.stderr)
	}
	reapOrphan(t, r.SupervisorPID)
	if testutil.Alive(r.PID) {
		t.Errorf("VMM %d alive after rm", r.PID)
	}
	if res := h.run(nil, "rm", name); res.code != 1 || !strings.Contains(res.stderr, "no such VM") {
		t.Errorf("second rm: code %d, stderr %q", res.code, res.stderr)
	}
}

// TestDetachExited kills a detached VM's VMM behind petty's back: ls shows
// it as exited (and changes nothing) until rm removes it.
func TestDetachExited(t *testing.T) {
	h := newHarness(t)
	res := h.run(nil, append([]string{"run", "--detach", "--name", "gone"}, h.vmFlags()...)...)
	if res.code != 0 {
		t.Fatalf("run --detach: code %d, stderr %q", res.code, res.stderr)
	}
	r := h.readRecord("gone")
	defer reapOrphan(t, r.SupervisorPID)
	if !testutil.Alive(r.PID) {
		t.Fatalf("VMM %d is not running", r.PID)
	}
	if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	reapOrphan(t, r.SupervisorPID) // it destroys the run dir and exits
	for range 2 {
		res = h.run(nil, "ls")
		if !regexpLine(res.stdout, "gone", "firecracker", "-", "exited") {
			t.Errorf("ls:\n%s", res.stdout)
		}
	}
	if res := h.run(nil, "rm", "gone"); res.code != 0 {
		t.Errorf("rm: code %d, stderr %q", res.code, res.stderr)
	}
	if res := h.run(nil, "ls"); strings.Contains(res.stdout, "gone") {
		t.Errorf("ls after rm still lists it:\n%s", res.stdout)
	}
}

// regexpLine reports whether some line of out holds every field in order.
func regexpLine(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, f := range fields {
			i := strings.Index(rest, f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}

// stopAndCheckGone runs "petty stop name" and checks that the VM r records
// is gone: VMM and supervisor processes, and its run directory.
func (h *harness) stopAndCheckGone(t *testing.T, name string, r record) {
	t.Helper()
	res := h.run(nil, "stop", name)
	if res.code != 0 {
		t.Fatalf("stop: code %d, stderr %q", res.code, res.stderr)
	}
	reapOrphan(t, r.SupervisorPID)
	if testutil.Alive(r.PID) || testutil.Alive(r.SupervisorPID) {
		t.Errorf("after stop: VMM alive %v, supervisor alive %v", testutil.Alive(r.PID), testutil.Alive(r.SupervisorPID))
	}
	if _, err := os.Stat(r.RunDir); !os.IsNotExist(err) {
		t.Errorf("run dir %s still there (%v)", r.RunDir, err)
	}
}

// TestDetachRmWhileStarting removes a VM whose agent never answers while
// its supervisor still boots it: the supervisor (found through the record,
// verified by start time and command line) destroys it, and run --detach
// fails.
func TestDetachRmWhileStarting(t *testing.T) {
	h := newHarness(t)
	c, _, stderr := h.command(nil, append([]string{"run", "--detach", "--name", "slow", "--boot-timeout", "60s"}, h.vmFlags()...)...)
	c.Env = append(append([]string(nil), h.env...), "FAKEFC_GUEST_CMD=exec sleep 120")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	// The supervisor records itself as soon as it runs.
	var r record
	for i := 0; ; i++ {
		if data, err := os.ReadFile(filepath.Join(h.stateDir, "slow.json")); err == nil && json.Unmarshal(data, &r) == nil && r.SupervisorPID != 0 {
			break
		}
		if i == 500 {
			t.Fatal("the supervisor never recorded itself")
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer reapOrphan(t, r.SupervisorPID)
	if res := h.run(nil, "ls"); !regexpLine(res.stdout, "slow", "starting") {
		t.Errorf("ls:\n%s", res.stdout)
	}
	if res := h.run(nil, "rm", "slow"); res.code != 0 {
		t.Errorf("rm: code %d, stderr %q", res.code, res.stderr)
	}
	_ = c.Wait()
	if code := c.ProcessState.ExitCode(); code != 1 {
		t.Errorf("run --detach: code %d, want 1; stderr %q", code, stderr)
	}
	reapOrphan(t, r.SupervisorPID)
	if testutil.Alive(r.SupervisorPID) {
		t.Errorf("supervisor %d alive after rm", r.SupervisorPID)
	}
	for _, pid := range procsNaming(t, h.runDir+"/") {
		t.Errorf("left behind: pid %d names the run dir", pid)
	}
}
