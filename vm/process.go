package vm

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// vmmWaitDelay bounds how long reaping waits for the VMM's output pipes once
// the process has exited (a leaked grandchild could hold them open). What the
// VMM wrote is drained within it; it is short because Shutdown, which returns
// once the VMM is reaped, must be back within a second of its deadline.
const vmmWaitDelay = 500 * time.Millisecond

// process is one spawned VMM. done is closed once it has been reaped; state
// and waitErr are valid from then on.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
}

// spawn starts cmd in its own process group with its output going to out,
// and reaps it in the background, calling onExit after reaping and before
// done is closed.
//
// The VMM dies with petty, whatever kills petty (SIGKILL included): it is
// started with PR_SET_PDEATHSIG=SIGKILL. Linux sends that signal when the
// *thread* that forked the child exits, and Go retires idle threads, so the
// VMM is started, waited for and reaped by one goroutine that holds its OS
// thread locked (runtime.LockOSThread) for the VMM's whole life. The race of
// a parent dying between fork and prctl is handled by syscall's
// forkAndExecInChild: after PR_SET_PDEATHSIG it compares getppid with the pid
// the parent had before the fork and, when they differ, sends itself the
// signal at once.
//
// The locked thread is not necessarily the caller's: Go may clone it from a
// template thread. When the caller's thread is in another network namespace
// than the spawning thread (a caller that entered one with setns to give the
// VMM a tap there), the spawning thread joins the caller's namespace first,
// and exits with its goroutine afterwards instead of returning to Go's pool.
func spawn(cmd *exec.Cmd, out *console, onExit func(*process)) (*process, error) {
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = vmmWaitDelay
	netns, _ := os.Open("/proc/thread-self/ns/net") // the caller's; nil if unreadable
	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tainted, err := joinNetns(netns)
		if netns != nil {
			_ = netns.Close()
		}
		if err == nil {
			err = cmd.Start()
		}
		started <- err
		if err != nil {
			if !tainted {
				runtime.UnlockOSThread()
			}
			return
		}
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		onExit(p)
		close(p.done)
		if !tainted {
			// The VMM has been reaped: the thread may go back to the pool.
			runtime.UnlockOSThread()
		}
		// A tainted thread stays locked and ends with this goroutine.
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// pid returns the process ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process. It goes through a pidfd (os.Process does
// that on Linux), so it can never hit a recycled PID; a process already
// reaped is not an error.
func (p *process) signal(sig os.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// kill sends SIGKILL and waits until the process has been reaped.
func (p *process) kill() {
	_ = p.signal(syscall.SIGKILL)
	<-p.done
}

// exitError describes the reaped process with the console's tail.
func (p *process) exitError(out *console) *ExitError {
	return &ExitError{State: p.state, Console: string(out.Tail(4 << 10))}
}
