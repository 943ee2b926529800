package sandbox_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// fakeManager is sandboxtest.FakeManager.
func fakeManager(t *testing.T, cfg sandbox.Config) *sandbox.Manager {
	t.Helper()
	return sandboxtest.FakeManager(t, cfg)
}

// create creates a sandbox or fails the test.
func create(t *testing.T, m *sandbox.Manager, opts sandbox.Options) *sandbox.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := m.Create(ctx, opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

// gone reports whether no process has pid.
func gone(pid int) bool { return pid == 0 || syscall.Kill(pid, 0) != nil }

// contextWithCancel returns a cancellable child of the test's context.
func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// waitPIDFile waits for a command to write its pid to path.
func waitPIDFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// waitGone waits for pid to be gone (or a zombie awaiting its reaper).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %d still runs", pid)
}
