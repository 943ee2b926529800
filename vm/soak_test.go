package vm_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// soakFault is one fault the soak injects, at one step of the
// create → start → agent → exec → destroy cycle.
type soakFault int

const (
	faultNone               soakFault = iota
	faultCrashAtStart                 // FAKEFC_CRASH_AT_START: the VMM dies at InstanceStart
	faultCrashMidExec                 // the VMM is SIGKILLed while a command runs through the agent
	faultAPIConfig                    // FAKEFC_FAIL=/machine-config: the configuration is refused
	faultAPIInstanceStart             // FAKEFC_FAIL=/actions: InstanceStart is refused
	faultAPIAnswer                    // FAKEFC_FAIL=/: the VMM answers 400 to the API call Start makes
	faultSlowSocket                   // FAKEFC_SOCKET_DELAY: the API socket appears late, within Start's ctx
	faultSocketTooLate                // FAKEFC_SOCKET_DELAY past Start's ctx
	faultAgentAbsent                  // no agent behind the vsock: the fake refuses every CONNECT
	faultAgentSilent                  // FAKEFC_VSOCK_SILENT: the guest accepts and never answers
	faultAgentDies                    // the host-run agent is SIGKILLed after the first Ping
	faultCancelAtStart                // Start's ctx ends within a few ms (or before Start)
	faultCancelDuringBoot             // FAKEFC_START_DELAY: Start's ctx ends while the VMM boots
	faultDestroyDuringStart           // FAKEFC_START_DELAY: Destroy is called while Start waits for the boot
	faultCancelDuringDial             // Agent's ctx ends within a few ms
	faultCancelDuringExec             // Exec's ctx is cancelled while the command runs
	faultShutdownIgnored              // the VMM ignores Ctrl-Alt-Del and SIGTERM: Shutdown must SIGKILL by its deadline
	faultPausedAtStop                 // the guest is paused (its processes SIGSTOPped) when Shutdown comes
	faultConcurrentStop               // Shutdown, Destroy, Start and Agent race with the regular Shutdown and Destroy
	numSoakFaults
)

var soakFaultNames = [...]string{
	"none", "crash-at-start", "crash-mid-exec", "api-config", "api-instance-start", "api-answer",
	"slow-socket", "socket-too-late", "agent-absent", "agent-silent", "agent-dies",
	"cancel-at-start", "cancel-during-boot", "destroy-during-start", "cancel-during-dial", "cancel-during-exec", "shutdown-ignored",
	"paused-at-stop", "concurrent-stop",
}

func (f soakFault) String() string { return soakFaultNames[f] }

// env is the fake firecracker's switches for f.
func (f soakFault) env(agentCmd string) []string {
	guest := "FAKEFC_GUEST_CMD=" + agentCmd
	switch f {
	case faultCrashAtStart:
		return []string{"FAKEFC_CRASH_AT_START=1"}
	case faultAPIConfig:
		return []string{"FAKEFC_FAIL=/machine-config"}
	case faultAPIInstanceStart:
		return []string{"FAKEFC_FAIL=/actions"}
	case faultAPIAnswer:
		return []string{"FAKEFC_FAIL=/"}
	case faultSlowSocket:
		return []string{guest, "FAKEFC_SOCKET_DELAY=300ms"}
	case faultSocketTooLate:
		return []string{"FAKEFC_SOCKET_DELAY=5s"}
	case faultAgentAbsent:
		return nil
	case faultCancelDuringBoot, faultDestroyDuringStart:
		return []string{guest, "FAKEFC_START_DELAY=5s"}
	case faultAgentSilent:
		return []string{guest, "FAKEFC_VSOCK_SILENT=1"}
	case faultShutdownIgnored:
		return []string{guest, "FAKEFC_IGNORE_CTRLALTDEL=1", "FAKEFC_IGNORE_SIGTERM=1"}
	default:
		return []string{guest}
	}
}

// Soak bounds.
const (
	soakCycles      = 200
	soakParallel    = 32
	soakStopTimeout = 2 * time.Second // Shutdown's and Destroy's ctx
	soakStopSlack   = time.Second     // how late they may return
	soakStepTimeout = 30 * time.Second
)

// soak is the state shared by the cycles.
type soak struct {
	t        *testing.T
	root     string // everything the soak creates lies under root
	runRoot  string // Config.RunDir
	kernel   string
	rootfs   string
	wrappers [numSoakFaults]string // a fake firecracker with the fault's switches
	bins     []string              // the fake firecracker and the agent, built for this test process

	mu          sync.Mutex
	vmmPIDs     []int
	agentPIDs   []int
	faults      [numSoakFaults]int
	outcomes    map[string]int
	maxOverrun  time.Duration // the latest a Shutdown or Destroy returned, relative to its deadline
	maxOverOp   string
	stopSamples int
	killed      []time.Duration // how late each Shutdown that had to SIGKILL returned
	warmingUp   bool            // set during the warm-up cycle, before the cycles run
}

// TestSoak runs create → start → agent → exec → destroy cycles on the fake
// firecracker, many at a time, injecting a different fault each cycle, and
// then proves that nothing leaked: processes, file descriptors, goroutines,
// run directories; and that every Shutdown and Destroy returned by its
// deadline plus soakStopSlack.
func TestSoak(t *testing.T) {
	cycles := soakCycles
	if testing.Short() {
		cycles = 3 * int(numSoakFaults)
	}
	s := newSoak(t)

	// One clean cycle first, so that what the runtime and the packages
	// allocate once (netpoller, pidfd probe, ...) is not counted as leaked.
	s.warmingUp = true
	s.cycle(-1, faultNone)
	s.faults[faultNone]--
	s.warmingUp = false
	fds := testutil.OpenFDs(t)
	goroutines := goleak.IgnoreCurrent()

	began := time.Now()
	sem := make(chan struct{}, soakParallel)
	var wg sync.WaitGroup
	for i := range cycles {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.cycle(i, soakFault(i%int(numSoakFaults)))
		})
	}
	wg.Wait()
	took := time.Since(began)

	leaked := s.checkProcesses()
	testutil.CheckFDs(t, fds)
	if err := goleak.Find(goroutines); err != nil {
		t.Errorf("goroutines leaked: %v", err)
	}
	if entries, err := os.ReadDir(s.runRoot); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run root: %v", err)
	} else if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("run dirs left in %s: %v", s.runRoot, names)
	}

	var perKind []string
	for f := range numSoakFaults {
		perKind = append(perKind, fmt.Sprintf("%v=%d", f, s.faults[f]))
	}
	var outcomes []string
	for k, n := range s.outcomes {
		outcomes = append(outcomes, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(outcomes)
	t.Logf("outcomes: %s", strings.Join(outcomes, " "))
	if n := len(s.killed); n > 0 {
		sort.Slice(s.killed, func(a, b int) bool { return s.killed[a] < s.killed[b] })
		t.Logf("%d Shutdowns had to SIGKILL; they returned after the deadline by: median %v, max %v",
			n, s.killed[n/2].Round(time.Millisecond), s.killed[n-1].Round(time.Millisecond))
	}
	t.Logf("soak: %d cycles, %d at a time, in %v; faults: %s; %d Shutdown/Destroy calls, max return after deadline %v (%s); %d VMMs, %d agents, %d processes leaked",
		cycles, soakParallel, took.Round(time.Millisecond), strings.Join(perKind, " "),
		s.stopSamples, s.maxOverrun.Round(time.Millisecond), s.maxOverOp, len(s.vmmPIDs), len(s.agentPIDs), leaked)
}

func newSoak(t *testing.T) *soak {
	s := &soak{t: t, root: testutil.ShortTempDir(t), outcomes: map[string]int{}}
	s.runRoot = filepath.Join(s.root, "run")
	s.kernel = filepath.Join(s.root, "vmlinux")
	s.rootfs = filepath.Join(s.root, "rootfs.ext4")
	for _, p := range []string{s.kernel, s.rootfs} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fc, agentBin := testutil.FakeFirecracker(t), testutil.Agent(t)
	s.bins = []string{fc, agentBin}
	agentCmd := "exec '" + agentBin + "' --listen unix://$FAKEFC_GUEST_DIR/1024"
	// The fake takes its switches from the environment, which Config does
	// not set per VM: each fault gets a wrapper that exports them and
	// execs the fake (same process).
	for f := range numSoakFaults {
		var script strings.Builder
		script.WriteString("#!/bin/sh\n")
		for _, kv := range f.env(agentCmd) {
			k, v, _ := strings.Cut(kv, "=")
			fmt.Fprintf(&script, "export %s=%s\n", k, shellQuote(v))
		}
		if f == faultDestroyDuringStart {
			// On the console: the VMM process runs (the event Destroy
			// waits for).
			script.WriteString("echo soak: vmm spawned\n")
		}
		fmt.Fprintf(&script, "exec %s \"$@\"\n", shellQuote(fc))
		s.wrappers[f] = filepath.Join(s.root, "firecracker-"+f.String())
		if err := os.WriteFile(s.wrappers[f], []byte(script.String()), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (s *soak) config(f soakFault) vm.Config {
	return vm.Config{
		Kernel:         s.kernel,
		RootDrive:      vm.Drive{Path: s.rootfs},
		Vsock:          &vm.Vsock{},
		FirecrackerBin: s.wrappers[f],
		RunDir:         s.runRoot,
	}
}

func (s *soak) outcome(f soakFault, what string) {
	if s.warmingUp {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes[f.String()+":"+what]++
}

// cycle runs one create → start → agent → exec → destroy cycle with fault f.
// i numbers the cycle (for messages and small variations).
func (s *soak) cycle(i int, f soakFault) {
	t := s.t
	s.mu.Lock()
	s.faults[f]++
	s.mu.Unlock()
	fail := func(format string, args ...any) {
		t.Errorf("cycle %d (%v): %s", i, f, fmt.Sprintf(format, args...))
	}
	cfg := s.config(f)
	spawned := &lineNotifier{line: make(chan struct{})}
	if f == faultDestroyDuringStart {
		cfg.Console = spawned
	}
	m, err := vm.New(cfg)
	if err != nil {
		fail("New: %v", err)
		return
	}
	var vmmPID int
	defer func() {
		s.stop(i, f, m, vmmPID)
	}()

	// Start.
	var startReturned time.Time
	startCtx, cancel := context.WithTimeout(t.Context(), soakStepTimeout)
	defer cancel()
	switch f {
	case faultSocketTooLate:
		startCtx, cancel = context.WithTimeout(startCtx, 200*time.Millisecond)
		defer cancel()
	case faultCancelAtStart:
		// 0 to 8 ms: cancelled before the spawn, while waiting for the
		// socket, or during the boot.
		startCtx, cancel = context.WithTimeout(startCtx, time.Duration(i%5)*2*time.Millisecond)
		defer cancel()
	case faultCancelDuringBoot:
		startCtx, cancel = context.WithTimeout(startCtx, 150*time.Millisecond)
		defer cancel()
	case faultDestroyDuringStart:
		// Another goroutine (say, a signal handler) destroys the Machine
		// once its VMM runs, while Start waits for the 5 s boot; Start
		// must give up then.
		destroyed := make(chan struct{})
		var destroyReturned time.Time
		defer func() {
			<-destroyed
			if late := startReturned.Sub(destroyReturned); !destroyReturned.IsZero() && late > soakStopSlack {
				fail("Start returned %v after Destroy did", late)
			}
		}()
		go func() {
			defer close(destroyed)
			select {
			case <-spawned.line:
			case <-startCtx.Done():
				return
			}
			s.timed(i, f, "Destroy during Start", m.Destroy)
			destroyReturned = time.Now()
		}()
	}
	err = m.Start(startCtx)
	startReturned = time.Now()
	switch f {
	case faultCrashAtStart, faultAPIConfig, faultAPIInstanceStart:
		var ee *vm.ExitError
		if !errors.As(err, &ee) {
			fail("Start = %v, want an *ExitError", err)
		}
	case faultAPIAnswer:
		if err == nil {
			fail("Start succeeded despite a 400 answer")
		}
	case faultSocketTooLate, faultCancelDuringBoot:
		if !errors.Is(err, context.DeadlineExceeded) {
			fail("Start = %v, want DeadlineExceeded", err)
		}
	case faultCancelAtStart:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			fail("Start = %v, want nil or DeadlineExceeded", err)
		}
	case faultDestroyDuringStart:
		if err == nil {
			fail("Start succeeded although Destroy was called meanwhile")
		}
	default:
		if err != nil {
			fail("Start: %v", err)
		}
	}
	if err != nil {
		s.outcome(f, "start-failed")
		if st := m.State(); (st != vm.Stopped && f != faultDestroyDuringStart) || m.PID() != 0 {
			fail("after a failed Start: state %v, pid %d", st, m.PID())
		}
		return
	}
	vmmPID = m.PID()
	s.mu.Lock()
	s.vmmPIDs = append(s.vmmPIDs, vmmPID)
	s.mu.Unlock()
	if f == faultCancelAtStart {
		s.outcome(f, "started")
		return
	}

	// Agent.
	agentCtx, cancel := context.WithTimeout(t.Context(), soakStepTimeout)
	defer cancel()
	switch f {
	case faultAgentAbsent, faultAgentSilent:
		agentCtx, cancel = context.WithTimeout(agentCtx, 400*time.Millisecond)
		defer cancel()
	case faultCancelDuringDial:
		agentCtx, cancel = context.WithTimeout(agentCtx, time.Duration(1+i%5)*3*time.Millisecond)
		defer cancel()
	}
	c, err := m.Agent(agentCtx)
	switch f {
	case faultAgentAbsent, faultAgentSilent:
		if !errors.Is(err, context.DeadlineExceeded) {
			fail("Agent = %v, want DeadlineExceeded", err)
		}
	case faultCancelDuringDial:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			fail("Agent = %v, want nil or DeadlineExceeded", err)
		}
	default:
		if err != nil {
			fail("Agent: %v\nconsole:\n%s", err, m.ConsoleTail())
		}
	}
	if err != nil {
		s.outcome(f, "agent-failed")
		return
	}
	defer c.Close()
	info, err := c.Ping(agentCtx)
	if err != nil {
		if f != faultCancelDuringDial {
			fail("Ping: %v", err)
		}
		return
	}
	s.mu.Lock()
	s.agentPIDs = append(s.agentPIDs, info.PID)
	s.mu.Unlock()
	if s.warmingUp {
		s.checkDetector(vmmPID, info.PID)
	}

	// Exec.
	execCtx, cancelExec := context.WithTimeout(t.Context(), soakStepTimeout)
	defer cancelExec()
	switch f {
	case faultAgentDies:
		// The agent is a child of the fake, started by this test.
		if err := syscall.Kill(info.PID, syscall.SIGKILL); err != nil {
			fail("kill agent %d: %v", info.PID, err)
		}
		if err := c.Exec(execCtx, &agent.Cmd{Args: []string{"echo", "hi"}}); err == nil {
			fail("Exec succeeded on a dead agent")
		}
		s.outcome(f, "exec-failed")
		return
	case faultCrashMidExec, faultCancelDuringExec:
		err := s.execInterrupted(execCtx, c, func() {
			if f == faultCancelDuringExec {
				cancelExec()
				return
			}
			// A crash: the VMM dies without warning (vm did not ask).
			if err := syscall.Kill(vmmPID, syscall.SIGKILL); err != nil {
				fail("kill vmm %d: %v", vmmPID, err)
			}
		})
		if f == faultCancelDuringExec && !errors.Is(err, context.Canceled) {
			fail("Exec = %v, want Canceled", err)
		}
		if f == faultCrashMidExec && err == nil {
			fail("Exec succeeded although the VMM crashed")
		}
		s.outcome(f, "exec-interrupted")
		return
	}
	var out bytes.Buffer
	if err := c.Exec(execCtx, &agent.Cmd{Args: []string{"echo", "hi"}, Stdout: &out}); err != nil || out.String() != "hi\n" {
		fail("Exec = %v, output %q", err, out.String())
		return
	}
	s.outcome(f, "exec-ok")
	switch f {
	case faultPausedAtStop:
		if err := m.Pause(execCtx); err != nil {
			fail("Pause: %v", err)
		}
	case faultConcurrentStop:
		c.Close() // the deferred Close is then a no-op
		var wg sync.WaitGroup
		for j := range 2 {
			wg.Go(func() {
				// The second Destroy comes after a Shutdown, while the
				// first is likely removing what the Machine left.
				if j == 1 {
					_ = s.timed(i, f, "concurrent Shutdown", m.Shutdown)
				}
				// A Destroy that waited for another may see its ctx end
				// first; one that returns nil has left nothing behind.
				err := s.timed(i, f, "concurrent Destroy", m.Destroy)
				switch {
				case err == nil:
					if _, err := os.Stat(m.RunDir()); !errors.Is(err, os.ErrNotExist) {
						fail("Destroy returned nil with the run dir still there (%v)", err)
					}
				case !errors.Is(err, context.DeadlineExceeded):
					fail("concurrent Destroy: %v", err)
				}
			})
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), soakStopTimeout)
			defer cancel()
			if c, err := m.Agent(ctx); err == nil {
				c.Close()
			}
		})
		wg.Go(func() {
			// A restart racing with Destroy must not leave a VMM behind:
			// Start either fails or boots a VMM that Destroy then stops.
			ctx, cancel := context.WithTimeout(t.Context(), soakStepTimeout)
			defer cancel()
			// Start is retried while it finds the VM running, so that
			// it hits the moment Shutdown has stopped the VMM and Destroy
			// has not finished.
			for {
				err := m.Start(ctx)
				switch {
				case err == nil:
					s.outcome(f, "restarted")
					if pid := m.PID(); pid != 0 {
						s.mu.Lock()
						s.vmmPIDs = append(s.vmmPIDs, pid)
						s.mu.Unlock()
					}
				case errors.Is(err, vm.ErrAlreadyRunning):
					runtime.Gosched()
				default:
					return
				}
			}
		})
		wg.Wait() // then the deferred stop finds the Machine destroyed
	}
}

// execInterrupted runs cat through c, and calls interrupt once cat has
// echoed a line: the command is surely running then.
func (s *soak) execInterrupted(ctx context.Context, c *agent.Client, interrupt func()) error {
	stdin, w := io.Pipe()
	defer w.Close() // ends the Exec's stdin reader, blocked in Read
	out := &lineNotifier{line: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- c.Exec(ctx, &agent.Cmd{Args: []string{"cat"}, Stdin: stdin, Stdout: out}) }()
	go func() { _, _ = io.WriteString(w, "running\n") }()
	select {
	case <-out.line:
		interrupt()
	case err := <-errc:
		return fmt.Errorf("cat ended before it echoed: %w", err)
	}
	return <-errc
}

// lineNotifier closes line when the first newline is written to it.
type lineNotifier struct {
	once sync.Once
	line chan struct{}
}

func (l *lineNotifier) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, '\n') >= 0 {
		l.once.Do(func() { close(l.line) })
	}
	return len(p), nil
}

// stop shuts m down and destroys it, timing both against their deadlines,
// and checks that m left nothing behind.
func (s *soak) stop(i int, f soakFault, m *vm.Machine, vmmPID int) {
	t := s.t
	shutdownErr := s.timed(i, f, "Shutdown", m.Shutdown)
	if f == faultShutdownIgnored && vmmPID != 0 && !errors.Is(shutdownErr, vm.ErrKilled) {
		t.Errorf("cycle %d (%v): Shutdown = %v, want ErrKilled", i, f, shutdownErr)
	}
	if err := s.timed(i, f, "Destroy", m.Destroy); err != nil {
		t.Errorf("cycle %d (%v): Destroy: %v", i, f, err)
	}
	if _, err := os.Stat(m.RunDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cycle %d (%v): run dir %s remains (%v)", i, f, m.RunDir(), err)
	}
	if vmmPID != 0 && testutil.Alive(vmmPID) {
		t.Errorf("cycle %d (%v): VMM %d outlived Destroy", i, f, vmmPID)
	}
}

// timed calls op with a soakStopTimeout ctx and records how late it returned.
func (s *soak) timed(i int, f soakFault, name string, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(s.t.Context(), soakStopTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	err := op(ctx)
	over := time.Since(deadline)
	if errors.Is(err, vm.ErrKilled) {
		s.mu.Lock()
		s.killed = append(s.killed, over)
		s.mu.Unlock()
	}
	if over > soakStopSlack {
		s.t.Errorf("cycle %d (%v): %s returned %v after its deadline", i, f, name, over)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopSamples++
	if s.stopSamples == 1 || over > s.maxOverrun {
		s.maxOverrun, s.maxOverOp = over, fmt.Sprintf("%s, cycle %d, %v", name, i, f)
	}
	return err
}

// checkProcesses fails the test for every process the soak started that
// remains: a child of the test process (zombie or not) that was a VMM; any
// process running the fake firecracker or the agent that this test process
// built (their directory is private to it); any process whose working
// directory lies under the soak's root (the VMMs run in their run
// directories, and their guests and the guests' commands inherit it). Those
// found are killed, by pid. It returns how many there were.
func (s *soak) checkProcesses() int {
	t := s.t
	leaked := 0
	seen := map[int]bool{}
	for _, pid := range s.vmmPIDs {
		seen[pid] = true
	}
	kids, err := testutil.Children()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kids {
		if seen[c.PID] {
			t.Errorf("VMM not reaped: %v", c)
			leaked++
		}
	}
	for _, p := range s.ourProcesses() {
		leaked++
		t.Errorf("process left behind: %s", p)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	return leaked
}

// checkDetector proves that ourProcesses sees a running VMM and its agent,
// so that finding none at the end means something.
func (s *soak) checkDetector(pids ...int) {
	found := map[int]bool{}
	for _, p := range s.ourProcesses() {
		found[p.pid] = true
	}
	for _, pid := range pids {
		if !found[pid] {
			s.t.Fatalf("the leak detector does not see running process %d", pid)
		}
	}
}

type soakProc struct {
	pid            int
	comm, exe, cwd string
}

func (p soakProc) String() string {
	return fmt.Sprintf("pid %d (%s), exe %s, cwd %s", p.pid, p.comm, p.exe, p.cwd)
}

// ourProcesses lists the live processes that run one of s.bins or whose
// working directory lies under s.root (a removed file or directory reads
// "<path> (deleted)").
func (s *soak) ourProcesses() []soakProc {
	under := func(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }
	entries, _ := os.ReadDir("/proc")
	var out []soakProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		p := soakProc{pid: pid}
		p.cwd, _ = os.Readlink(filepath.Join(dir, "cwd"))
		p.exe, _ = os.Readlink(filepath.Join(dir, "exe"))
		ours := under(p.cwd, s.root)
		for _, b := range s.bins {
			ours = ours || strings.TrimSuffix(p.exe, " (deleted)") == b
		}
		if ours && testutil.Alive(pid) {
			b, _ := os.ReadFile(filepath.Join(dir, "comm"))
			p.comm = strings.TrimSpace(string(b))
			out = append(out, p)
		}
	}
	return out
}
