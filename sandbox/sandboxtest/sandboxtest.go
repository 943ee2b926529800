// Package sandboxtest builds sandbox.Managers for tests: sandboxes that
// run under the fake firecracker, with the real petty-agent as their
// "guest" (a process on the host).
package sandboxtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/vm"
)

// FakeConfig fills cfg so that its sandboxes run under the fake
// firecracker: it sets FAKEFC_GUEST_CMD (t.Setenv) to run petty-agent,
// makes placeholder kernel and rootfs files and a private run root, and
// sets HostMemoryMiB to 1 TiB unless given. It returns the run root.
func FakeConfig(t testing.TB, cfg *sandbox.Config) string {
	t.Helper()
	bin := testutil.Agent(t)
	t.Setenv("FAKEFC_GUEST_CMD", "exec '"+bin+"' --listen unix://$FAKEFC_GUEST_DIR/1024")
	dir := testutil.ShortTempDir(t)
	kernel := filepath.Join(dir, "vmlinux")
	rootfs := filepath.Join(dir, "rootfs.ext4")
	for _, p := range []string{kernel, rootfs} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Images = func(_ context.Context, name string) (sandbox.Image, error) {
		return sandbox.Image{Kernel: kernel, RootFS: rootfs}, nil
	}
	runRoot := filepath.Join(dir, "run")
	cfg.VM = vm.Config{Vsock: &vm.Vsock{}, FirecrackerBin: testutil.FakeFirecracker(t), RunDir: runRoot}
	cfg.WorkDir = dir
	if cfg.HostMemoryMiB == 0 {
		cfg.HostMemoryMiB = 1 << 20
	}
	return runRoot
}

// FakeManager returns a Manager of FakeConfig(cfg), closed when the test
// ends, checking then that no run directory and no child process is left.
func FakeManager(t testing.TB, cfg sandbox.Config) *sandbox.Manager {
	t.Helper()
	runRoot := FakeConfig(t, &cfg)
	m, err := sandbox.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		entries, _ := os.ReadDir(runRoot)
		for _, e := range entries {
			t.Errorf("left in the run root: %s", e.Name())
		}
		testutil.CheckNoChildren(t)
	})
	return m
}
