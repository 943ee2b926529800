package main

import (
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/vm"
)

// TestQEMUDetachConcurrentExec runs two `petty exec` into one detached QEMU
// guest at once: the serial agent channel is shared (the supervisor's
// agent.Mux), so both run together and succeed, instead of the second
// ending the first's session.
func TestQEMUDetachConcurrentExec(t *testing.T) {
	h := newQEMUHarness(t)
	res := h.run(nil, append([]string{"run", "--vmm", "qemu", "--detach", "--name", "qpair"}, qemuFlags...)...)
	if res.code != 0 || res.stdout != "qpair\n" {
		t.Fatalf("run --detach: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	r := h.readRecord("qpair")
	defer reapOrphan(t, r.SupervisorPID)
	if r.VMM != vm.QEMU {
		t.Fatalf("record %+v: want QEMU", r)
	}
	defer h.stopAndCheckGone(t, "qpair", r)

	exec := func() (result, time.Duration) {
		began := time.Now()
		res := h.run(nil, "exec", "qpair", "--", "sh", "-c", "sleep 2; echo done")
		return res, time.Since(began)
	}
	alone, took := exec()
	if alone.code != 0 || alone.stdout != "done\n" {
		t.Fatalf("exec alone: code %d, stdout %q, stderr %q", alone.code, alone.stdout, alone.stderr)
	}
	began := time.Now()
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Go(func() { results[i], _ = exec() })
	}
	wg.Wait()
	together := time.Since(began)
	for i, res := range results {
		if res.code != 0 || res.stdout != "done\n" {
			t.Errorf("exec %d: code %d, stdout %q, stderr %q", i+1, res.code, res.stdout, res.stderr)
		}
	}
	t.Logf("one exec alone: %v; two at once: %v", took.Round(time.Millisecond), together.Round(time.Millisecond))
	if together > took*3/2 {
		t.Errorf("two concurrent execs took %v, one alone %v: not concurrent", together, took)
	}
}
