package pidfd

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "600")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	return c
}

func TestOpenVerifies(t *testing.T) {
	c := startSleep(t)
	pid := c.Process.Pid
	start, err := StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		start   uint64
		needles []string
		want    bool
	}{
		{"matching", start, []string{"sleep\x00600"}, true},
		{"no needles", start, nil, true},
		{"other start time (recycled pid)", start + 1, nil, false},
		{"zero start time", 0, nil, false},
		{"command line mismatch", start, []string{"qemu"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Open(pid, tt.start, tt.needles...)
			if err != nil {
				t.Fatal(err)
			}
			if (p != nil) != tt.want {
				t.Fatalf("Open = %v, want a process: %v", p, tt.want)
			}
			if p != nil {
				p.Close()
			}
		})
	}
}

func TestWaitAndKill(t *testing.T) {
	c := startSleep(t)
	start, _ := StartTime(c.Process.Pid)
	p, err := Open(c.Process.Pid, start)
	if err != nil || p == nil {
		t.Fatalf("Open = %v, %v", p, err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a live process = %v, want DeadlineExceeded", err)
	}
	if p.Exited() {
		t.Fatal("Exited on a live process")
	}
	if err := p.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() {
		t.Error("not Exited after Kill")
	}
	_ = c.Wait()
	// Signals to a reaped process are no error, and never reach another.
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after exit = %v", err)
	}
	if _, err := StartTime(c.Process.Pid); !errors.Is(err, ErrGone) {
		t.Errorf("StartTime of a reaped pid = %v, want ErrGone", err)
	}
	if p, _ := Open(c.Process.Pid, start); p != nil {
		t.Error("Open of a reaped pid returned a process")
	}
}

func TestStartTimeSelf(t *testing.T) {
	a, err := StartTime(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("StartTime(self) = %d, %v", a, err)
	}
}

// TestConcurrentWaits: a Wait whose ctx ends does not end another.
func TestConcurrentWaits(t *testing.T) {
	c := startSleep(t)
	start, _ := StartTime(c.Process.Pid)
	p, err := Open(c.Process.Pid, start)
	if err != nil || p == nil {
		t.Fatalf("Open = %v, %v", p, err)
	}
	defer p.Close()
	long := make(chan error, 1)
	go func() { long <- p.Wait(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("short Wait = %v", err)
	}
	select {
	case err := <-long:
		t.Fatalf("the other Wait returned %v while the process runs", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.Kill(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-long; err != nil {
		t.Errorf("long Wait = %v after the kill", err)
	}
}
