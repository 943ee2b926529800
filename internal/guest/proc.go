package guest

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Reaping design.
//
// Outside PID 1 the agent waits for each child it started and nothing else:
// a waiter goroutine first blocks in waitid(P_PID, WEXITED|WNOWAIT), which
// observes the exit without reaping, marks the process exited, and only then
// reaps it with Process.Wait. killGroup checks the mark under the same lock,
// so the process-group id is never signalled after the leader was reaped
// (when the id could have been reused).
//
// As PID 1 the agent also inherits every orphan, so a single reaper loops on
// wait4(-1, WNOHANG) at each SIGCHLD. Starting a process and registering its
// pid happen under the reaper's lock, so the reaper can never reap a child of
// ours before it is registered; when it reaps a registered pid it hands the
// status to that process instead of discarding it. Children started by the
// agent are therefore never waited twice, and their statuses are never lost.
// killGroup holds the reaper lock too, which again orders it before reaping.

// reaper reaps every child of PID 1, delivering statuses of registered ones.
type reaper struct {
	mu    sync.Mutex
	procs map[int]*process
}

func startReaper() *reaper {
	r := &reaper{procs: make(map[int]*process)}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	go func() {
		for range ch {
			r.reap()
		}
	}()
	r.reap()
	return r
}

func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if p, ok := r.procs[pid]; ok {
			delete(r.procs, pid)
			p.finish(syscall.WaitStatus(ws))
			p.cmd.Process.Release()
		}
	}
}

// process is a started command whose process group the agent may kill.
type process struct {
	cmd *exec.Cmd
	pid int
	r   *reaper // nil: wait for it directly

	mu     sync.Mutex
	exited bool
	status syscall.WaitStatus
	done   chan struct{} // closed once status is set
}

// startProcess starts cmd (which must put itself in a new process group) and
// arranges for its exit status to be collected.
func startProcess(cmd *exec.Cmd, r *reaper) (*process, error) {
	if r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, r: r, done: make(chan struct{})}
	if r != nil {
		r.procs[p.pid] = p
	} else {
		go p.waitDirect()
	}
	return p, nil
}

func (p *process) waitDirect() {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	p.mu.Lock()
	p.exited = true
	p.mu.Unlock()
	var ws syscall.WaitStatus
	if state, err := p.cmd.Process.Wait(); err == nil {
		ws, _ = state.Sys().(syscall.WaitStatus)
	}
	p.finish(ws)
}

func (p *process) finish(ws syscall.WaitStatus) {
	p.mu.Lock()
	p.exited = true
	p.status = ws
	p.mu.Unlock()
	close(p.done)
}

// killGroup sends SIGKILL to the process group while its leader is alive.
func (p *process) killGroup() { p.signalGroup(unix.SIGKILL) }

// signalGroup sends sig to the process group while its leader is alive.
func (p *process) signalGroup(sig unix.Signal) {
	if p.r != nil {
		p.r.mu.Lock()
		defer p.r.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		_ = unix.Kill(-p.pid, sig)
	}
}
