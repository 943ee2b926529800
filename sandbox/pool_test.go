package sandbox_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
)

// waitPool waits for m's pools to be full.
func waitPool(t *testing.T, m *sandbox.Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := m.WaitPool(ctx); err != nil {
		t.Fatalf("WaitPool: %v", err)
	}
}

// pooledPIDs returns the VMMs among the test's live children that are no
// listed sandbox's: the pooled VMs.
func pooledPIDs(t *testing.T, m *sandbox.Manager) []int {
	t.Helper()
	kids, err := testutil.Children()
	if err != nil {
		t.Fatal(err)
	}
	var listed []int
	for _, s := range m.List(nil) {
		listed = append(listed, s.Info().VMMPID)
	}
	var out []int
	for _, c := range kids {
		if c.State != "Z" && !slices.Contains(listed, c.PID) {
			out = append(out, c.PID)
		}
	}
	slices.Sort(out)
	return out
}

// childrenOf returns the pids whose parent is pid.
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(e.Name())
			out = append(out, n)
		}
	}
	return out
}

// createSteps creates a sandbox and returns its progress steps.
func createSteps(t *testing.T, m *sandbox.Manager, opts sandbox.Options) (*sandbox.Sandbox, []string) {
	t.Helper()
	var steps []string
	opts.Progress = func(s string) { steps = append(steps, s) }
	return create(t, m, opts), steps
}

// TestPoolAcquireRefill: Create hands out a pooled VM (no VM starts on the
// call path), the pool refills in the background, pooled VMs are not
// listed, and Close destroys them.
func TestPoolAcquireRefill(t *testing.T) {
	m := fakeManager(t, sandbox.Config{Pool: 2})
	waitPool(t, m)
	if got := m.Pooled(); got != 2 {
		t.Fatalf("Pooled = %d, want 2", got)
	}
	if l := m.List(nil); len(l) != 0 || m.Len() != 0 {
		t.Errorf("pooled VMs are listed: %d sandboxes", len(l))
	}
	pooled := pooledPIDs(t, m)
	if len(pooled) != 2 {
		t.Fatalf("pooled VMMs: %v, want 2", pooled)
	}
	began := time.Now()
	s, steps := createSteps(t, m, sandbox.Options{Labels: map[string]string{"k": "v"}, Env: []string{"A=b"}})
	took := time.Since(began)
	if !slices.Contains(steps, "acquired from the pool") || slices.Contains(steps, "booting VM") {
		t.Errorf("steps %q: not an acquire", steps)
	}
	if !slices.Contains(pooled, s.Info().VMMPID) {
		t.Errorf("sandbox's VMM %d is not one of the pooled %v", s.Info().VMMPID, pooled)
	}
	t.Logf("acquire took %v", took)
	res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"sh", "-c", "echo $A"}})
	if err != nil || string(res.Stdout) != "b\n" {
		t.Errorf("Run = %q, %v", res.Stdout, err)
	}
	if l := m.List(nil); len(l) != 1 || l[0] != s {
		t.Errorf("List = %v, want the handed-out sandbox only", l)
	}
	waitPool(t, m) // refilled
	if got, all := m.Pooled(), pooledPIDs(t, m); got != 2 || len(all) != 2 || slices.Contains(all, s.Info().VMMPID) {
		t.Errorf("after refill: Pooled = %d, pooled VMMs %v", got, all)
	}
	// A sandbox of another size is not served by the pool.
	_, steps = createSteps(t, m, sandbox.Options{MemoryMiB: 512})
	if slices.Contains(steps, "acquired from the pool") {
		t.Errorf("a 512 MiB sandbox came from the 256 MiB pool: %q", steps)
	}
	all := pooledPIDs(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range all {
		if testutil.Alive(pid) {
			t.Errorf("pooled VMM %d survived Close", pid)
		}
	}
}

// TestPoolHealthCheck: a pooled VM whose agent died (the VMM still runs) or
// whose VMM was killed is never handed out, and is replaced.
func TestPoolHealthCheck(t *testing.T) {
	m := fakeManager(t, sandbox.Config{Pool: 1})
	for _, what := range []string{"agent", "vmm"} {
		t.Run(what, func(t *testing.T) {
			waitPool(t, m)
			pooled := pooledPIDs(t, m)
			if len(pooled) != 1 {
				t.Fatalf("pooled VMMs: %v", pooled)
			}
			victim := pooled[0]
			if what == "agent" {
				guests := childrenOf(t, victim)
				if len(guests) != 1 {
					t.Fatalf("the fake VMM %d has children %v, want its guest", victim, guests)
				}
				if err := syscall.Kill(guests[0], syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitGone(t, guests[0])
			} else {
				if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			s := create(t, m, sandbox.Options{})
			if s.Info().VMMPID == victim {
				t.Fatalf("the broken pooled VM %d was handed out", victim)
			}
			if res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"true"}}); err != nil || res.ExitCode != 0 {
				t.Errorf("Run = %+v, %v", res, err)
			}
			waitPool(t, m)
			waitGone(t, victim)
			if err := m.Destroy(t.Context(), s.ID()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPoolMemoryAdmission: pooled VMs hold memory: the pool fills only
// within the limit, and a sandbox that would not fit evicts them.
func TestPoolMemoryAdmission(t *testing.T) {
	// 512 MiB allowed; the pool's VMs have 256 MiB each.
	m := fakeManager(t, sandbox.Config{Pool: 2, HostMemoryMiB: 1024, MemoryShare: 0.5})
	waitPool(t, m)
	pooled := pooledPIDs(t, m)
	// 384 MiB fits only once both pooled VMs (512 MiB) are gone.
	big, steps := createSteps(t, m, sandbox.Options{MemoryMiB: 384})
	if slices.Contains(steps, "acquired from the pool") {
		t.Fatalf("steps %q", steps)
	}
	for _, pid := range pooled {
		waitGone(t, pid)
	}
	if n := m.Pooled(); n != 0 {
		t.Errorf("Pooled = %d with 384 of 512 MiB in use, want 0", n)
	}
	// 128 MiB more fills the limit; the pool cannot refill.
	small := create(t, m, sandbox.Options{MemoryMiB: 128})
	_, err := m.Create(t.Context(), sandbox.Options{MemoryMiB: 128})
	var le *sandbox.LimitError
	if !errors.As(err, &le) || le.Resource != "memory" || le.InUse != 512 {
		t.Fatalf("Create over the limit: %v, want a memory LimitError with 512 MiB in use", err)
	}
	if n := m.Pooled(); n != 0 {
		t.Errorf("Pooled = %d at the limit", n)
	}
	// Room again: the pool refills to 2 once both fit.
	if err := m.Destroy(t.Context(), big.ID()); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(t.Context(), small.ID()); err != nil {
		t.Fatal(err)
	}
	waitPool(t, m)
	if n := m.Pooled(); n != 2 {
		t.Errorf("Pooled = %d after the sandboxes left, want 2", n)
	}
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSnapshotsFallBack: with Snapshots where a clone cannot be made (the
// fake firecracker's "guest" is petty-agent on the host, which refuses a
// clone's refresh), sandboxes boot cold with the reason logged, and the
// template is not made again for every sandbox.
func TestSnapshotsFallBack(t *testing.T) {
	var made templateCounter
	var logs syncBuffer
	m := fakeManager(t, sandbox.Config{Snapshots: true, StateDir: filepath.Join(t.TempDir(), "state"), OnTemplate: made.on,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		s, steps := createSteps(t, m, sandbox.Options{})
		if res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"true"}}); err != nil || res.ExitCode != 0 {
			t.Fatalf("Run = %+v, %v", res, err)
		}
		if !slices.Contains(steps, "booting VM") {
			t.Skipf("the fake firecracker's clones work now (steps %q): nothing falls back", steps)
		}
	}
	if made.count() != 1 {
		t.Errorf("templates made: %q, want one", made.made)
	}
	if n := strings.Count(logs.String(), "booting cold"); n != 3 {
		t.Errorf("%d cold boots logged, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "reason=") {
		t.Errorf("no reason logged:\n%s", logs.String())
	}
}
