package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/pidfd"
	"github.com/pettyvm/petty/internal/testutil"
)

// qemuSleepArgv is a foreground petty run of a QEMU guest that prints
// "ready" and sleeps.
func qemuSleepArgv() []string {
	return append(append([]string{"run", "--vmm", "qemu"}, qemuFlags...), "--", "sh", "-c", "echo ready; exec sleep 600")
}

// TestQEMURunSignals: each stop signal sent to a foreground petty run
// destroys its QEMU guest (the VMM is gone, and the run directory) and petty
// exits with 128 + the signal's number.
func TestQEMURunSignals(t *testing.T) {
	h := newQEMUHarness(t)
	for _, tt := range stopSignalTests {
		t.Run(tt.sig.String(), func(t *testing.T) {
			c, stderr := h.startReady(t, qemuSleepArgv())
			h.checkStoppedBy(t, c, stderr, tt.sig, tt.code)
		})
	}
}

// TestQEMURunSIGKILL kills a foreground petty run with SIGKILL: its QEMU
// dies with it, and the next petty ls reclaims the run directory.
func TestQEMURunSIGKILL(t *testing.T) {
	h := newQEMUHarness(t)
	c, _ := h.startReady(t, qemuSleepArgv())
	pids := qemuProcs(t, h.runDir)
	if len(pids) != 1 {
		t.Fatalf("qemu processes: %v, want one", pids)
	}
	start, err := pidfd.StartTime(pids[0])
	if err != nil {
		t.Fatal(err)
	}
	vmm, err := pidfd.Open(pids[0], start)
	if err != nil || vmm == nil {
		t.Fatalf("pidfd.Open(%d) = %v, %v", pids[0], vmm, err)
	}
	defer vmm.Close()
	defer reapOrphan(t, pids[0]) // the test process is its subreaper
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := vmm.Wait(ctx); err != nil {
		t.Errorf("QEMU (pid %d) outlived petty run killed with SIGKILL by 10s (the VMM must die with its owner: PDEATHSIG)", pids[0])
	}
	if entries, _ := os.ReadDir(h.runDir); len(entries) != 1 {
		t.Errorf("run root before ls: %v, want the dead run's directory", entries)
	}
	res := h.run(nil, "ls")
	if res.code != 0 {
		t.Errorf("ls: code %d, stderr %q", res.code, res.stderr)
	}
	if entries, _ := os.ReadDir(h.runDir); len(entries) != 0 {
		t.Errorf("run root after ls: %v, want it reclaimed", entries)
	}
	if testutil.Alive(pids[0]) {
		t.Errorf("QEMU (pid %d) alive after petty ls", pids[0])
	}
}
