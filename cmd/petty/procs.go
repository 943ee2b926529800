package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pidProc is a process petty did not start (another petty's VMM or
// supervisor), held through a pidfd so that signals can never reach a
// process that reused its PID.
type pidProc struct {
	pid int
	fd  int
}

// openProc returns the live process pid if its command line contains every
// one of needles (the VM's run directory, say), or nil when there is no such
// process: it exited, is a zombie, or the PID now belongs to something else.
func openProc(pid int, needles ...string) (*pidProc, error) {
	if pid <= 0 {
		return nil, nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	// Checked after opening the pidfd: if pid is still ours now, the pidfd
	// refers to it for good.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 { // gone, or a zombie
		unix.Close(fd)
		return nil, nil
	}
	for _, n := range needles {
		if !bytes.Contains(cmdline, []byte(n)) {
			unix.Close(fd)
			return nil, nil
		}
	}
	return &pidProc{pid: pid, fd: fd}, nil
}

// signal sends sig; a process that already exited is not an error.
func (p *pidProc) signal(sig syscall.Signal) error {
	err := unix.PidfdSendSignal(p.fd, sig, nil, 0)
	if err == nil || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, err)
}

// wait waits up to d for the process to exit and reports whether it did.
func (p *pidProc) wait(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == nil && n > 0 {
			return true
		}
		if (err != nil && !errors.Is(err, syscall.EINTR)) || time.Now().After(deadline) {
			return n > 0
		}
	}
}

// stop sends SIGTERM, then SIGKILL if the process is still there after
// grace, and waits for it to be gone.
func (p *pidProc) stop(grace time.Duration) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if p.wait(grace) {
		return nil
	}
	return p.kill()
}

// kill sends SIGKILL and waits (briefly) for the process to be gone.
func (p *pidProc) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.wait(5 * time.Second) {
		return fmt.Errorf("pid %d survived SIGKILL", p.pid)
	}
	return nil
}

func (p *pidProc) close() { unix.Close(p.fd) }
