package vm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// withOutputHolder makes cfg's VMM a wrapper that leaves a background
// process holding the VMM's output pipes (as a helper a VMM spawned could),
// then execs the fake firecracker with env. The holder ends by itself after
// holdFor; the test kills it earlier, by pid.
func withOutputHolder(t *testing.T, cfg *vm.Config, holdFor time.Duration, env ...string) {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	pidFile := filepath.Join(dir, "holder.pid")
	var script strings.Builder
	script.WriteString("#!/bin/sh\n")
	for _, kv := range env {
		fmt.Fprintf(&script, "export %s\n", kv)
	}
	fmt.Fprintf(&script, "sleep %g & echo $! > %s\n", holdFor.Seconds(), pidFile)
	fmt.Fprintf(&script, "exec '%s' \"$@\"\n", cfg.FirecrackerBin)
	cfg.FirecrackerBin = filepath.Join(dir, "firecracker")
	if err := os.WriteFile(cfg.FirecrackerBin, []byte(script.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL) // the sleep this test started
		}
	})
}

// TestStartReportsCrashWhileOutputHeld: a VMM that crashes at boot is
// reported as an *ExitError with its last words even when it is reaped only
// after Start's grace (here a descendant holds its output pipes, as a starved
// reaper would under load): it exited with a status, it was not killed.
func TestStartReportsCrashWhileOutputHeld(t *testing.T) {
	cfg := fakeConfig(t)
	withOutputHolder(t, &cfg, 5*time.Second, "FAKEFC_CRASH_AT_START=1")
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(context.WithoutCancel(t.Context()))
	err = m.Start(t.Context())
	var ee *vm.ExitError
	if !errors.As(err, &ee) || !strings.Contains(ee.Console, "crash at InstanceStart") {
		t.Fatalf("Start = %v, want an *ExitError with the VMM's last words", err)
	}
}

// TestShutdownDeadlineWhileOutputHeld: Shutdown returns within a second of
// its deadline even when a descendant of the VMM holds the VMM's output
// pipes open after SIGKILL (reaping must not wait for them that long).
func TestShutdownDeadlineWhileOutputHeld(t *testing.T) {
	cfg := fakeConfig(t)
	withOutputHolder(t, &cfg, 10*time.Second, "FAKEFC_IGNORE_CTRLALTDEL=1", "FAKEFC_IGNORE_SIGTERM=1")
	m, err := vm.Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(context.WithoutCancel(t.Context()))
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	err = m.Shutdown(ctx)
	if !errors.Is(err, vm.ErrKilled) {
		t.Errorf("Shutdown = %v, want ErrKilled", err)
	}
	if late := time.Since(deadline); late > time.Second {
		t.Errorf("Shutdown returned %v after its deadline, want under a second", late)
	}
}
