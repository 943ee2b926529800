package vm

import (
	"errors"
	"os"
	"os/exec"
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
func spawn(cmd *exec.Cmd, out *console, onExit func(*process)) (*process, error) {
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = vmmWaitDelay
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		onExit(p)
		close(p.done)
	}()
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
