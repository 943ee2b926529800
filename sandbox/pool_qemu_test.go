package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/vm"
)

// qemuManager returns a Manager of real QEMU/TCG guests of the minimal
// image, and its run root.
func qemuManager(t *testing.T, cfg sandbox.Config) (*sandbox.Manager, string) {
	t.Helper()
	img := testutil.GuestImage(t)
	dir := testutil.ShortTempDir(t)
	cfg.Images = func(context.Context, string) (sandbox.Image, error) {
		return sandbox.Image{Kernel: img.Kernel, Initrd: img.Initrd}, nil
	}
	runRoot := filepath.Join(dir, "run")
	cfg.VM = vm.Config{VMM: vm.QEMU, Accel: "tcg", VCPUs: 1, MemoryMiB: 256, RunDir: runRoot}
	cfg.BootTimeout = 2 * time.Minute
	cfg.WorkDir = dir
	m, err := sandbox.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, runRoot
}

// closeClean closes m and checks that no VMM, run directory or child
// process is left.
func closeClean(t *testing.T, m *sandbox.Manager, runRoot string, pids ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, pid := range pids {
		if testutil.Alive(pid) {
			t.Errorf("VMM %d survived Close", pid)
		}
	}
	entries, _ := os.ReadDir(runRoot)
	for _, e := range entries {
		t.Errorf("left in the run root: %s", e.Name())
	}
	testutil.CheckNoChildren(t)
}

// TestQEMUPool: real guests in the pool, restored from the template: an acquire hands out a pooled
// guest whose agent answers, the pool refills, a pooled guest whose QEMU
// was killed is never handed out and is replaced, and Close leaves nothing.
func TestQEMUPool(t *testing.T) {
	m, runRoot := qemuManager(t, sandbox.Config{Pool: 1, Snapshots: true})
	var seen []int
	defer func() { closeClean(t, m, runRoot, seen...) }()

	waitPool(t, m)
	pooled := pooledPIDs(t, m)
	seen = append(seen, pooled...)
	if len(pooled) != 1 || len(m.List(nil)) != 0 {
		t.Fatalf("pooled QEMUs %v, listed %d", pooled, len(m.List(nil)))
	}
	began := time.Now()
	s, steps := createSteps(t, m, sandbox.Options{})
	took := time.Since(began)
	t.Logf("acquire: %v (steps %q)", took, steps)
	if !slices.Contains(steps, "acquired from the pool") || s.Info().VMMPID != pooled[0] {
		t.Errorf("Create did not hand out the pooled guest: steps %q, VMM %d, pooled %v", steps, s.Info().VMMPID, pooled)
	}
	res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"uname", "-s"}})
	if err != nil || string(res.Stdout) != "Linux\n" {
		t.Fatalf("Run = %q, %v", res.Stdout, err)
	}

	waitPool(t, m) // refilled
	pooled = pooledPIDs(t, m)
	seen = append(seen, pooled...)
	if len(pooled) != 1 {
		t.Fatalf("after the refill, pooled QEMUs %v", pooled)
	}
	victim := pooled[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s2 := create(t, m, sandbox.Options{})
	seen = append(seen, s2.Info().VMMPID)
	if s2.Info().VMMPID == victim {
		t.Fatalf("the killed pooled QEMU %d was handed out", victim)
	}
	if res, err := s2.Run(t.Context(), sandbox.RunOptions{Args: []string{"uname"}}); err != nil || res.ExitCode != 0 {
		t.Errorf("Run = %+v, %v", res, err)
	}
	waitPool(t, m) // replaced
	pooled = pooledPIDs(t, m)
	seen = append(seen, pooled...)
	if len(pooled) != 1 || pooled[0] == victim || !testutil.Alive(pooled[0]) {
		t.Errorf("after the kill, pooled QEMUs %v (killed %d)", pooled, victim)
	}
}
