package sandbox_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/vm"
)

// TestQEMU drives two real busybox guests under QEMU/TCG: exec, a timeout
// that kills the guest command's process group, isolation between the
// sandboxes, a background process, files, and Close leaving no VMM.
func TestQEMU(t *testing.T) {
	img := testutil.GuestImage(t)
	dir := testutil.ShortTempDir(t)
	m, err := sandbox.NewManager(sandbox.Config{
		Images: func(context.Context, string) (sandbox.Image, error) {
			return sandbox.Image{Kernel: img.Kernel, Initrd: img.Initrd}, nil
		},
		VM:          vm.Config{VMM: vm.QEMU, Accel: "tcg", VCPUs: 1, RunDir: filepath.Join(dir, "run")},
		BootTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var a, b *sandbox.Sandbox
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() { a, errA = m.Create(ctx, sandbox.Options{MemoryMiB: 256}) })
	wg.Go(func() { b, errB = m.Create(ctx, sandbox.Options{MemoryMiB: 256}) })
	wg.Wait()
	var pids []int
	for _, s := range []*sandbox.Sandbox{a, b} {
		if s != nil {
			pids = append(pids, s.Info().VMMPID)
		}
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		for _, pid := range pids {
			if !gone(pid) {
				t.Errorf("QEMU %d survived Close", pid)
			}
		}
		testutil.CheckNoChildren(t)
	}()
	if errA != nil || errB != nil {
		t.Fatalf("Create: %v / %v", errA, errB)
	}

	res, err := a.Run(ctx, sandbox.RunOptions{Args: []string{"sh", "-c", "echo hi; echo err >&2; exit 7"}})
	if err != nil || string(res.Stdout) != "hi\n" || string(res.Stderr) != "err\n" || res.ExitCode != 7 {
		t.Fatalf("Run = %+v, %v", res, err)
	}

	// Isolation: a file written in a is not in b.
	if err := a.WriteFile(ctx, "/tmp/x/only-in-a", []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "/tmp/x/only-in-a"); err == nil {
		t.Error("b sees a's file")
	}
	if got, err := a.ReadFile(ctx, "/tmp/x/only-in-a", 100); err != nil || string(got) != "a" {
		t.Errorf("ReadFile = %q, %v", got, err)
	}

	// A timeout kills the command and its children in the guest.
	res, err = a.Run(ctx, sandbox.RunOptions{
		Args:    []string{"sh", "-c", "sleep 300 & echo $! > /tmp/child; wait"},
		Timeout: 2 * time.Second,
	})
	if err != nil || !res.TimedOut {
		t.Fatalf("timed run: %+v, %v", res, err)
	}
	child, err := a.ReadFile(ctx, "/tmp/child", 100)
	if err != nil {
		t.Fatal(err)
	}
	res, err = a.Run(ctx, sandbox.RunOptions{Args: []string{"sh", "-c", `grep -v '^Z\|State:.*Z' /proc/"$0"/status 2>/dev/null | grep State || echo gone`, strings.TrimSpace(string(child))}})
	if err != nil || !strings.Contains(string(res.Stdout), "gone") && !strings.Contains(string(res.Stdout), "zombie") {
		t.Errorf("the timed-out command's child %s: %q %v", child, res.Stdout, err)
	}

	// A background process with output retrieved later, then killed.
	pid, err := b.Start(ctx, sandbox.StartOptions{Args: []string{"sh", "-c", "echo started; exec sleep 300"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var pi sandbox.ProcessInfo
	for time.Now().Before(deadline) {
		if pi, _ = b.Process(pid); string(pi.Stdout) == "started\n" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if string(pi.Stdout) != "started\n" || !pi.Running {
		t.Errorf("background: %+v", pi)
	}
	if err := b.Kill(ctx, pid); err != nil {
		t.Fatal(err)
	}
	res, err = b.Run(ctx, sandbox.RunOptions{Args: []string{"sh", "-c", "pgrep -x sleep || echo none"}})
	if err != nil || string(res.Stdout) != "none\n" {
		t.Errorf("after Kill, sleeps in the guest: %q %v", res.Stdout, err)
	}
}
