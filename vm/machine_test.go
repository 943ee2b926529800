package vm_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// fakeConfig returns a Config that boots on the fake firecracker, with a
// vsock device, in a short private run dir.
func fakeConfig(t *testing.T) vm.Config {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	kernel := filepath.Join(dir, "vmlinux")
	rootfs := filepath.Join(dir, "rootfs.ext4")
	for _, p := range []string{kernel, rootfs} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return vm.Config{
		Kernel:         kernel,
		RootDrive:      vm.Drive{Path: rootfs},
		Vsock:          &vm.Vsock{},
		FirecrackerBin: testutil.FakeFirecracker(t),
		RunDir:         filepath.Join(dir, "run"),
	}
}

// checkClean asserts that m left nothing behind: no process, no run dir,
// and that the test process has no children.
func checkClean(t *testing.T, m *vm.Machine, pid int) {
	t.Helper()
	checkMachineClean(t, m, pid)
	testutil.CheckNoChildren(t)
}

// checkMachineClean asserts that m left nothing behind: no process, no run dir.
func checkMachineClean(t *testing.T, m *vm.Machine, pid int) {
	t.Helper()
	if _, err := os.Stat(m.RunDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir %s still exists (err=%v)", m.RunDir(), err)
	}
	if pid != 0 {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("VMM pid %d still exists", pid)
		}
	}
}

func TestLifecycle(t *testing.T) {
	ctx := t.Context()
	fds := testutil.OpenFDs(t)
	m, err := vm.New(fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := m.PID()
	if m.State() != vm.Running || pid == 0 {
		t.Fatalf("after Start: state %v pid %d", m.State(), pid)
	}
	if err := m.Start(ctx); !errors.Is(err, vm.ErrAlreadyRunning) {
		t.Errorf("second Start = %v, want ErrAlreadyRunning", err)
	}
	if err := m.Resume(ctx); !errors.Is(err, vm.ErrNotPaused) {
		t.Errorf("Resume while running = %v, want ErrNotPaused", err)
	}
	if err := m.Pause(ctx); err != nil || m.State() != vm.Paused {
		t.Fatalf("Pause = %v, state %v", err, m.State())
	}
	if err := m.Resume(ctx); err != nil || m.State() != vm.Running {
		t.Fatalf("Resume = %v, state %v", err, m.State())
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if m.State() != vm.Stopped || m.PID() != 0 {
		t.Fatalf("after Shutdown: state %v pid %d", m.State(), m.PID())
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Errorf("Wait after a graceful stop = %v", err)
	}
	if !strings.Contains(string(m.ConsoleTail()), "fake") {
		t.Errorf("console tail lacks the fake's boot lines: %q", m.ConsoleTail())
	}

	// Start after Stop cold-boots a fresh VMM with the same config.
	if err := m.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	pid2 := m.PID()
	if pid2 == 0 || pid2 == pid {
		t.Fatalf("restart pid %d (first %d)", pid2, pid)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *vm.ExitError
	if err := m.Wait(ctx); !errors.As(err, &ee) {
		t.Errorf("Wait after Kill = %v, want *ExitError", err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Errorf("second Destroy = %v", err)
	}
	if err := m.Start(ctx); !errors.Is(err, vm.ErrDestroyed) {
		t.Errorf("Start after Destroy = %v", err)
	}
	checkClean(t, m, pid2)
	testutil.CheckFDs(t, fds)
}

func TestCreateAndDestroyRunning(t *testing.T) {
	m, err := vm.Create(t.Context(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	pid := m.PID()
	if err := m.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m.State() != vm.Destroyed {
		t.Errorf("state %v", m.State())
	}
	checkClean(t, m, pid)
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		timeout time.Duration
		check   func(t *testing.T, err error)
	}{
		{"config rejected by the vmm", map[string]string{"PETTY_TEST_GONE_KERNEL": "1"}, 0, func(t *testing.T, err error) {
			var ee *vm.ExitError
			if !errors.As(err, &ee) || !strings.Contains(ee.Console, "vmlinux") {
				t.Errorf("err = %v, want an *ExitError with Firecracker's reason", err)
			}
		}},
		{"crash at start", map[string]string{"FAKEFC_CRASH_AT_START": "1"}, 0, func(t *testing.T, err error) {
			var ee *vm.ExitError
			if !errors.As(err, &ee) || !strings.Contains(ee.Console, "crash at InstanceStart") {
				t.Errorf("err = %v, want an *ExitError with the VMM's stderr", err)
			}
		}},
		{"socket never appears", map[string]string{"FAKEFC_NO_SOCKET": "1"}, 300 * time.Millisecond, func(t *testing.T, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want DeadlineExceeded", err)
			}
		}},
		{"cancelled mid-start", map[string]string{"FAKEFC_START_DELAY": "10s"}, 300 * time.Millisecond, func(t *testing.T, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want DeadlineExceeded", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg := fakeConfig(t)
			m, err := vm.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if os.Getenv("PETTY_TEST_GONE_KERNEL") != "" {
				// Valid for New, gone by Start: the VMM rejects it.
				if err := os.Remove(cfg.Kernel); err != nil {
					t.Fatal(err)
				}
			}
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			begin := time.Now()
			err = m.Start(ctx)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			if tt.timeout > 0 && time.Since(begin) > tt.timeout+2*time.Second {
				t.Errorf("Start took %v after a %v timeout", time.Since(begin), tt.timeout)
			}
			tt.check(t, err)
			if m.State() != vm.Stopped || m.PID() != 0 {
				t.Errorf("after failed Start: state %v pid %d", m.State(), m.PID())
			}
			if err := m.Destroy(t.Context()); err != nil {
				t.Fatal(err)
			}
			checkClean(t, m, 0)
		})
	}
}

func TestAPIErrorAfterBoot(t *testing.T) {
	t.Setenv("FAKEFC_FAIL", "/vm")
	m, err := vm.Create(t.Context(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	err = m.Pause(t.Context())
	var ae *firecracker.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.FaultMessage, "injected") {
		t.Errorf("Pause = %v, want an *APIError 400 with the fault message", err)
	}
	if m.State() != vm.Running {
		t.Errorf("state after a failed Pause: %v", m.State())
	}
}

func TestShutdownEscalates(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
	}{
		{"ctrl-alt-del ignored", map[string]string{"FAKEFC_IGNORE_CTRLALTDEL": "1"}, nil},
		{"sigterm ignored too", map[string]string{"FAKEFC_IGNORE_CTRLALTDEL": "1", "FAKEFC_IGNORE_SIGTERM": "1"}, vm.ErrKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			m, err := vm.Create(t.Context(), fakeConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			pid := m.PID()
			const timeout = 800 * time.Millisecond
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			begin := time.Now()
			err = m.Shutdown(ctx)
			took := time.Since(begin)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Shutdown = %v, want %v", err, tt.wantErr)
			}
			if took > timeout+500*time.Millisecond {
				t.Errorf("Shutdown returned after %v, deadline was %v", took, timeout)
			}
			if m.State() != vm.Stopped {
				t.Errorf("state %v", m.State())
			}
			if err := m.Destroy(t.Context()); err != nil {
				t.Fatal(err)
			}
			checkClean(t, m, pid)
		})
	}
}

func TestShutdownFromManyGoroutines(t *testing.T) {
	m, err := vm.Create(t.Context(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	pid := m.PID()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := m.Shutdown(t.Context()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if m.State() != vm.Stopped {
				t.Errorf("Shutdown returned in state %v", m.State())
			}
		})
	}
	wg.Wait()
	if err := m.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, m, pid)
}

// guestListener listens where the fake firecracker bridges CONNECT port.
func guestListener(t *testing.T, dir string, port uint32) net.Listener {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, fmt.Sprint(port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// echo serves one connection on l, echoing lines back with a prefix.
func echo(l net.Listener, greeting string) {
	c, err := l.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	io.WriteString(c, greeting)
	s := bufio.NewScanner(c)
	for s.Scan() {
		fmt.Fprintf(c, "echo: %s\n", s.Text())
	}
}

func TestDialVsock(t *testing.T) {
	guestDir := testutil.ShortTempDir(t)
	t.Setenv("FAKEFC_GUEST_DIR", guestDir)
	t.Setenv("FAKEFC_VSOCK_GREETING", "hello from the vmm\n")
	m, err := vm.Create(t.Context(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())

	// A dial while the guest does not listen yet keeps retrying; one with a
	// short deadline ends with it. Only once that one ended (its attempts
	// failed, and the first dial's meanwhile) does the guest listen: the
	// first dial then connects.
	const port = 1024
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	type dialed struct {
		conn net.Conn
		err  error
	}
	first := make(chan dialed, 1)
	go func() {
		conn, err := m.DialVsock(ctx, port)
		first <- dialed{conn, err}
	}()
	early, cancel1 := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel1()
	if _, err := m.DialVsock(early, port); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial before the guest listens = %v, want DeadlineExceeded", err)
	}
	done := make(chan struct{})
	l := guestListener(t, guestDir, port)
	go func() {
		defer close(done)
		echo(l, "")
	}()
	d := <-first
	if d.err != nil {
		t.Fatal(d.err)
	}
	conn := d.conn
	r := bufio.NewReader(conn)
	if line, _ := r.ReadString('\n'); line != "hello from the vmm\n" {
		t.Errorf("bytes that came with OK were lost: got %q", line)
	}
	fmt.Fprintf(conn, "ping\n")
	if line, _ := r.ReadString('\n'); line != "echo: ping\n" {
		t.Errorf("echo = %q", line)
	}
	conn.Close()
	<-done

	short, cancel2 := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel2()
	if _, err := m.DialVsock(short, 9999); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial to a port nobody listens on = %v, want DeadlineExceeded", err)
	}
}

func TestDialVsockErrors(t *testing.T) {
	cfg := fakeConfig(t)
	cfg.Vsock = nil
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	if _, err := m.DialVsock(t.Context(), 1); !errors.Is(err, vm.ErrNoVsock) {
		t.Errorf("without vsock: %v", err)
	}
	m2, err := vm.New(fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Destroy(t.Context())
	if _, err := m2.DialVsock(t.Context(), 1); !errors.Is(err, vm.ErrNotRunning) {
		t.Errorf("before Start: %v", err)
	}
}

func TestConcurrentMachines(t *testing.T) {
	const n = 32
	fds := testutil.OpenFDs(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m, err := vm.Create(t.Context(), fakeConfig(t))
			if err != nil {
				t.Errorf("vm %d: %v", i, err)
				return
			}
			pid := m.PID()
			if err := m.Destroy(t.Context()); err != nil {
				t.Errorf("vm %d: destroy: %v", i, err)
			}
			checkMachineClean(t, m, pid)
		})
	}
	wg.Wait()
	testutil.CheckNoChildren(t)
	testutil.CheckFDs(t, fds)
}

func TestListenVsock(t *testing.T) {
	m, err := vm.New(fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	l, err := m.ListenVsock(52)
	if err != nil {
		t.Fatal(err)
	}
	path := m.Config().Vsock.Path + "_52"
	go func() {
		if c, err := net.Dial("unix", path); err == nil {
			io.WriteString(c, "from the guest\n")
			c.Close()
		}
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if line != "from the guest\n" {
		t.Errorf("read %q", line)
	}
	l.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("listener socket left behind: %v", err)
	}
}
