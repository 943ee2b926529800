package guest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// defaultKillGrace is how long a timed-out command's process group has
	// between SIGTERM and SIGKILL unless the start message says otherwise.
	defaultKillGrace = 2 * time.Second
	// groupPoll is how often terminate looks whether the group is empty:
	// the kernel gives no event for the last member of a group exiting.
	groupPoll = 20 * time.Millisecond
	// killedWait bounds the wait, after SIGKILL, for the group's members
	// to be gone.
	killedWait = time.Second
)

// terminate ends p's whole process group: SIGTERM, then SIGKILL once grace
// has passed (at once when ctx ends) if any member is left, members that
// outlived the leader included. It returns once the group is empty, or
// killedWait after SIGKILL.
//
// Signalling a group whose leader was reaped: members left behind keep the
// group id in use, so its number cannot be given to a new process; the
// signal can only reach a stranger if every member exited and the pid
// space wrapped around within the grace period.
func (p *process) terminate(ctx context.Context, grace time.Duration) {
	p.signalGroupLate(unix.SIGTERM)
	if p.waitGroupGone(ctx, grace) {
		return
	}
	p.signalGroupLate(unix.SIGKILL)
	p.waitGroupGone(context.Background(), killedWait)
}

// signalGroupLate sends sig to p's process group, even once the leader
// exited (see terminate).
func (p *process) signalGroupLate(sig unix.Signal) {
	if p.r != nil {
		p.r.mu.Lock()
		defer p.r.mu.Unlock()
	}
	_ = unix.Kill(-p.pid, sig)
}

// groupAlive reports whether any process of p's group is left that is not
// a zombie (a zombie orphan waits for its reaper, which outside a guest is
// not the agent and may take its time).
func (p *process) groupAlive() bool {
	if errors.Is(unix.Kill(-p.pid, 0), unix.ESRCH) {
		return false
	}
	return groupHasLiveMember("/proc", p.pid)
}

// groupHasLiveMember reports whether a process of process group pgid that
// is not a zombie is listed in procDir; true when procDir cannot be read.
func groupHasLiveMember(procDir string, pgid int) bool {
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return true
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(procDir + "/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		state, pg, ok := parseStat(b)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// parseStat returns the state and process group of a /proc/PID/stat line.
func parseStat(b []byte) (state byte, pgrp int, ok bool) {
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pg, true
}

// waitGroupGone waits up to d, or until ctx ends, for p's group to be
// empty, and reports whether it is.
func (p *process) waitGroupGone(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(groupPoll)
	defer tick.Stop()
	for p.groupAlive() {
		select {
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// execTimeout arms a command's timeout: when it expires before finish is
// called, the process group is terminated (see terminate).
type execTimeout struct {
	timer    *time.Timer
	done     chan struct{} // closed once terminate returned
	mu       sync.Mutex
	fired    bool
	finished bool
}

// startTimeout arms a timeout of d for p; grace is terminate's.
func startTimeout(ctx context.Context, p *process, d, grace time.Duration) *execTimeout {
	t := &execTimeout{done: make(chan struct{})}
	t.timer = time.AfterFunc(d, func() {
		t.mu.Lock()
		if t.finished {
			t.mu.Unlock()
			return
		}
		t.fired = true
		t.mu.Unlock()
		defer close(t.done)
		p.terminate(ctx, grace)
	})
	return t
}

// finish disarms the timeout and reports whether it expired first, in which
// case it returns once the process group was terminated. A nil timeout
// never expires; finish may be called more than once.
func (t *execTimeout) finish() bool {
	if t == nil {
		return false
	}
	t.timer.Stop()
	t.mu.Lock()
	t.finished = true
	fired := t.fired
	t.mu.Unlock()
	if fired {
		<-t.done
	}
	return fired
}
