package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/fifo"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent"
)

// exitVMGone is the exit status of a process whose VM went away.
const exitVMGone = 255

// process is a container's init process or one of its execs, running in
// the guest.
type process struct {
	ctr    *container
	execID string // "" for the init process

	terminal              bool
	stdin, stdout, stderr string
	args, env             []string
	cwd                   string
	resize                chan agent.WindowSize

	mu         sync.Mutex
	pid        int // in the guest; 0 until started
	status     task.Status
	exitStatus uint32
	exitedAt   time.Time
	stdinFile  io.ReadCloser // nil once closed
	done       chan struct{} // closed when exited
}

func newProcess(c *container, execID string, p *ociProcess, terminal bool, stdin, stdout, stderr string) *process {
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	return &process{
		ctr: c, execID: execID, terminal: terminal,
		stdin: stdin, stdout: stdout, stderr: stderr,
		args: p.Args, env: p.Env, cwd: cwd,
		resize: make(chan agent.WindowSize, 4),
		status: task.Status_CREATED, done: make(chan struct{}),
	}
}

// openStdin opens the process's stdin FIFO at once, as the task is
// created: a FIFO's buffered data is lost when its writer closes while no
// reader has it open, so the shim holds the reading side from the start.
// The open completes in the background; the FIFO closes when the shim's
// context ends.
func (p *process) openStdin() error {
	if p.stdin == "" {
		return nil
	}
	f, err := fifo.OpenFifo(p.ctr.svc.ctx, p.stdin, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	p.mu.Lock()
	p.stdinFile = f
	p.mu.Unlock()
	return nil
}

// openOutput opens the process's stdout and stderr FIFOs.
func (p *process) openOutput(ctx context.Context) (stdout, stderr io.WriteCloser, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if p.stdout != "" {
		if stdout, err = fifo.OpenFifo(ctx, p.stdout, unix.O_WRONLY, 0); err != nil {
			return nil, nil, fmt.Errorf("stdout: %w", err)
		}
	}
	if p.stderr != "" && !p.terminal {
		if stderr, err = fifo.OpenFifo(ctx, p.stderr, unix.O_WRONLY, 0); err != nil {
			if stdout != nil {
				stdout.Close()
			}
			return nil, nil, fmt.Errorf("stderr: %w", err)
		}
	}
	return stdout, stderr, nil
}

// start runs the process in the guest and returns once it started (or
// failed to); onExit is called once it exited.
func (p *process) start(ctx context.Context, onExit func(*process)) error {
	stdout, stderr, err := p.openOutput(ctx)
	if err != nil {
		return err
	}
	p.mu.Lock()
	stdin := p.stdinFile
	p.mu.Unlock()
	cmd := &agent.Cmd{
		Args: p.args, Env: p.env, Dir: p.cwd,
		Root: p.ctr.guestRoot(), NewNamespaces: true, TTY: p.terminal,
		Resize: p.resize,
	}
	if p.execID != "" {
		// An exec joins the init process's mount and PID namespaces and
		// root (busybox nsenter of the guest's initramfs; it changes to the
		// working directory, a path of the guest, before the root).
		initPID, _, _, _ := p.ctr.init.state()
		if initPID == 0 || p.ctr.init.isExited() {
			return errdefs.ToGRPCf(errdefs.ErrFailedPrecondition, "container %s is not running", p.ctr.id)
		}
		cmd.Args = append([]string{guestBusybox, "nsenter", "-t", strconv.Itoa(initPID), "-m", "-p", "-r", "-w" + p.ctr.guestRoot() + p.cwd, "--"}, p.args...)
		cmd.Root, cmd.Dir, cmd.NewNamespaces = "", "/", false
	}
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		stdout = newAsyncWriter(stdout)
		cmd.Stdout = stdout
	}
	if stderr != nil {
		stderr = newAsyncWriter(stderr)
		cmd.Stderr = stderr
	}
	started := make(chan int, 1)
	cmd.Started = func(pid int) { started <- pid }
	execErr := make(chan error, 1)
	go func() {
		err := p.ctr.pod.client.Exec(p.ctr.svc.ctx, cmd)
		for _, c := range []io.Closer{stdout, stderr} {
			if c != nil {
				c.Close()
			}
		}
		p.closeStdin()
		select {
		case execErr <- err:
		default:
		}
		var ee *agent.ExitError
		if err != nil && !errors.As(err, &ee) {
			log.G(ctx).WithError(err).WithField("exec", p.execID).Warn("petty: the guest process ended without an exit status")
		}
		p.exited(exitStatus(err))
		onExit(p)
	}()
	select {
	case pid := <-started:
		p.mu.Lock()
		p.pid, p.status = pid, task.Status_RUNNING
		p.mu.Unlock()
		if p.execID == "" {
			p.mountProc(ctx, pid)
		}
		return nil
	case err := <-execErr:
		return fmt.Errorf("starting %q in the guest: %w", p.args, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mountProc mounts a /proc of the container's own PID namespace over the
// guest's in the container's mount namespace, so that the container sees
// its processes only. The container's process may run before this: a
// failure is logged, the guest's /proc then stays.
func (p *process) mountProc(ctx context.Context, pid int) {
	_, err := p.ctr.pod.run(ctx, guestBusybox, "nsenter", "-t", strconv.Itoa(pid), "-m", "-p", "--",
		guestBusybox, "mount", "-t", "proc", "proc", p.ctr.guestRoot()+"/proc")
	if err != nil {
		log.G(ctx).WithError(err).Warn("petty: the container's own /proc")
	}
}

// exitStatus turns Exec's result into a wait status: the exit code, or
// 128+signal.
func exitStatus(err error) uint32 {
	if err == nil {
		return 0
	}
	var ee *agent.ExitError
	if !errors.As(err, &ee) {
		return exitVMGone
	}
	if ee.Signal != "" {
		if n := unix.SignalNum(ee.Signal); n != 0 {
			return 128 + uint32(n)
		}
		return exitVMGone
	}
	return uint32(ee.Code)
}

// exited records the exit status once.
func (p *process) exited(status uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status == task.Status_STOPPED {
		return
	}
	p.status, p.exitStatus, p.exitedAt = task.Status_STOPPED, status, time.Now()
	close(p.done)
}

// kill sends sig to the process in the guest; a process not started yet
// is marked exited by the signal.
func (p *process) kill(ctx context.Context, sig uint32) error {
	p.mu.Lock()
	pid, status := p.pid, p.status
	p.mu.Unlock()
	switch {
	case status == task.Status_STOPPED:
		return nil
	case pid == 0:
		p.exited(128 + sig)
		return nil
	}
	target := strconv.Itoa(pid)
	if p.execID != "" {
		// The exec's nsenter and the command it forked: its process group.
		target = "-" + target
	}
	_, err := p.ctr.pod.run(ctx, guestBusybox, "kill", "-"+strconv.FormatUint(uint64(sig), 10), target)
	if err != nil && p.isExited() {
		return nil
	}
	return err
}

func (p *process) isExited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// closeStdin closes the process's stdin: EOF reaches it in the guest.
func (p *process) closeStdin() {
	p.mu.Lock()
	f := p.stdinFile
	p.stdinFile = nil
	p.mu.Unlock()
	if f != nil {
		f.Close()
	}
}

// stdinDrain bounds how long CloseIO lets the guest read what the client
// wrote before it closed its end of the FIFO.
const stdinDrain = 2 * time.Second

// closeIO is CloseIO's stdin: the client closed its end of the FIFO, so
// the FIFO normally ends by itself once drained; should another writer
// hold it open, it is closed after stdinDrain.
func (p *process) closeIO() {
	p.mu.Lock()
	f := p.stdinFile
	p.mu.Unlock()
	if f == nil {
		return
	}
	time.AfterFunc(stdinDrain, p.closeStdin)
}

// state returns pid, status, exit status and time under the lock.
func (p *process) state() (int, task.Status, uint32, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid, p.status, p.exitStatus, p.exitedAt
}
