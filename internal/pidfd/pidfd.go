// Package pidfd holds processes petty did not start (another petty's VMM or
// supervisor) through pidfds, so that a signal can never reach a process
// that reused a recorded PID. A process is identified by its PID and its
// start time (field 22 of /proc/PID/stat): a PID that was recycled has
// another start time.
package pidfd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a live process held through a pidfd. Its methods are safe for
// concurrent use until Close.
type Process struct {
	pid int
	f   *os.File // the pidfd, registered with the runtime's poller
}

// ErrGone is returned by StartTime for a PID with no live process.
var ErrGone = errors.New("no such process")

// StartTime returns the start time of pid in clock ticks since boot, or an
// error wrapping ErrGone when there is no such process or it is a zombie.
func StartTime(pid int) (uint64, error) {
	st, state, err := stat(pid)
	if err != nil {
		return 0, err
	}
	if state == 'Z' || state == 'X' {
		return 0, fmt.Errorf("pid %d: %w (zombie)", pid, ErrGone)
	}
	return st, nil
}

// stat parses /proc/PID/stat: start time and state letter.
func stat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return 0, 0, fmt.Errorf("pid %d: %w", pid, ErrGone)
		}
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("pid %d: malformed stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	const stateField, startField = 3, 22 // 1-based, as in proc(5)
	if len(fields) < startField-2 {
		return 0, 0, fmt.Errorf("pid %d: malformed stat", pid)
	}
	start, err = strconv.ParseUint(string(fields[startField-3]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("pid %d: malformed stat: %w", pid, err)
	}
	return start, fields[stateField-3][0], nil
}

// Open returns the live process pid if it started at start (as StartTime
// reports it) and its command line contains every one of needles; or nil
// and no error when there is no such process: it exited, is a zombie, or the
// PID now belongs to something else.
func Open(pid int, start uint64, needles ...string) (*Process, error) {
	if pid <= 0 || start == 0 {
		return nil, nil
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, syscall.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Checked after opening the pidfd: if pid is the process we want now,
	// the pidfd refers to it for good.
	p := &Process{pid: pid, f: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}
	got, err := StartTime(pid)
	if err != nil || got != start || !cmdlineHas(pid, needles) {
		p.Close()
		return nil, nil
	}
	return p, nil
}

func cmdlineHas(pid int, needles []string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(cmdline) == 0 { // gone, or a zombie
		return false
	}
	for _, n := range needles {
		if !bytes.Contains(cmdline, []byte(n)) {
			return false
		}
	}
	return true
}

// PID returns the process ID.
func (p *Process) PID() int { return p.pid }

// Signal sends sig through the pidfd; a process that already exited is not
// an error.
func (p *Process) Signal(sig syscall.Signal) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	if serr == nil || errors.Is(serr, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, serr)
}

// Exited reports whether the process has exited (it may still be a zombie
// that its parent has not reaped).
func (p *Process) Exited() bool {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return true
	}
	ready := false
	_ = rc.Control(func(fd uintptr) { ready = readable(fd) })
	return ready
}

func readable(fd uintptr) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return err == nil && n > 0
	}
}

// Wait blocks until the process exits (a pidfd becomes readable then) or
// ctx ends; it returns nil or ctx's error. No polling: the runtime's poller
// waits on a duplicate of the pidfd (one per call, so that concurrent Waits
// with different contexts do not share a deadline).
func (p *Process) Wait(ctx context.Context) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	dupFD := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { dupFD, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return fmt.Errorf("pidfd of %d: %w", p.pid, derr)
	}
	f := os.NewFile(uintptr(dupFD), "pidfd:"+strconv.Itoa(p.pid)) // O_NONBLOCK is shared with the original
	defer f.Close()
	wrc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	err = wrc.Read(func(fd uintptr) bool { return readable(fd) })
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if p.Exited() {
			return nil
		}
		return ctx.Err()
	}
	return err
}

// Kill sends SIGKILL and waits up to d for the process to exit.
func (p *Process) Kill(d time.Duration) error {
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		return fmt.Errorf("pid %d survived SIGKILL for %v: %w", p.pid, d, err)
	}
	return nil
}

// Close releases the pidfd.
func (p *Process) Close() error { return p.f.Close() }
