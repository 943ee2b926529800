package vm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// ownerChildEnv carries the JSON Config of TestOwnerChild: set, the test
// binary runs as the VMM's owner process.
const ownerChildEnv = "PETTY_TEST_OWNER_CONFIG"

// vmmGoneWithin bounds how long the VMM may outlive its SIGKILLed owner.
const vmmGoneWithin = 5 * time.Second

// TestOwnerChild is not a test on its own: TestVMMDiesWithOwner runs the
// test binary with it as the process that owns a Machine. It starts the
// Machine from a goroutine that locks its OS thread and exits without
// unlocking it (so Go destroys that thread, which must not kill the VMM:
// PR_SET_PDEATHSIG fires when the forking thread exits), checks that the VMM
// survived that, prints "VMM <pid>" and waits to be killed.
func TestOwnerChild(t *testing.T) {
	js := os.Getenv(ownerChildEnv)
	if js == "" {
		t.Skip("run by TestVMMDiesWithOwner only")
	}
	var cfg vm.Config
	if err := json.Unmarshal([]byte(js), &cfg); err != nil {
		t.Fatal(err)
	}
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var startErr error
	tid := make(chan int, 1)
	done := make(chan struct{})
	var start func()
	start = func() {
		runtime.LockOSThread() // never unlocked: the thread ends with us
		if unix.Gettid() == os.Getpid() {
			// The main thread is never destroyed: hold it, so that
			// another goroutine gets another thread.
			go start()
			<-done
			runtime.UnlockOSThread()
			return
		}
		defer close(done)
		tid <- unix.Gettid()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		startErr = m.Start(ctx)
	}
	go start()
	starter := <-tid
	<-done
	if startErr != nil {
		t.Fatalf("Start: %v\n%s", startErr, m.ConsoleTail())
	}
	pid := m.PID()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The starter thread goes away shortly after its goroutine.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", starter)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d that called Start did not exit", starter)
		}
		time.Sleep(time.Millisecond)
	}
	if readable(t, pidfd, 300*time.Millisecond) {
		t.Fatalf("the VMM died with the thread that called Start:\n%s", m.ConsoleTail())
	}
	fmt.Printf("VMM %d\n", pid)
	select {} // until killed
}

// readable polls fd for POLLIN up to timeout (a pidfd is readable once its
// process exited).
func readable(t *testing.T, fd int, timeout time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n > 0
	}
}

// children returns the pids whose parent is pid (any of its threads).
func children(pid int) []int {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// runOwnerAndKill runs TestOwnerChild with cfg, SIGKILLs it once its VMM
// runs, and checks that the VMM and the VMM's own children are gone within
// vmmGoneWithin.
func runOwnerAndKill(t *testing.T, cfg vm.Config) {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestOwnerChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), ownerChildEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	pid := 0
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if p, ok := strings.CutPrefix(sc.Text(), "VMM "); ok {
			pid, _ = strconv.Atoi(p)
			break
		}
	}
	if pid == 0 {
		_ = cmd.Wait()
		t.Fatalf("the owner process printed no VMM pid:\n%s", strings.Join(lines, "\n"))
	}
	watch := append([]int{pid}, children(pid)...)
	pidfds := make([]int, 0, len(watch))
	for _, p := range watch {
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", p, err)
		}
		defer unix.Close(fd)
		pidfds = append(pidfds, fd)
	}
	t.Logf("owner %d, VMM %d, the VMM's children %v", cmd.Process.Pid, pid, watch[1:])

	killed := time.Now()
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i, fd := range pidfds {
		if !readable(t, fd, time.Until(killed.Add(vmmGoneWithin))) {
			t.Errorf("pid %d still runs %v after its owner was SIGKILLed", watch[i], vmmGoneWithin)
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
	}
	t.Logf("VMM gone %v after its owner was SIGKILLed", time.Since(killed).Round(time.Microsecond))
}

// TestVMMDiesWithOwner SIGKILLs the process that owns a running Machine on
// the fake firecracker (whose guest, the real petty-agent, is its child):
// the VMM and its child must die too, and nothing may be left.
func TestVMMDiesWithOwner(t *testing.T) {
	withAgentGuest(t)
	cfg := fakeConfig(t)
	runOwnerAndKill(t, cfg)
}

// TestQEMUDiesWithOwner is TestVMMDiesWithOwner on a real QEMU guest.
func TestQEMUDiesWithOwner(t *testing.T) {
	img := testutil.GuestImage(t)
	cfg := vm.Config{
		VMM: vm.QEMU, Accel: "tcg", VCPUs: 1, MemoryMiB: 256,
		Kernel: img.Kernel, Initrd: img.Initrd,
		RunDir: filepath.Join(testutil.ShortTempDir(t), "run"),
	}
	runOwnerAndKill(t, cfg)
}
