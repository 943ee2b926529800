package guest

import (
	"context"
	"errors"
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
	groupPoll = 10 * time.Millisecond
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

// groupAlive reports whether any process of p's group is left (a zombie not
// yet reaped counts).
func (p *process) groupAlive() bool {
	return !errors.Is(unix.Kill(-p.pid, 0), unix.ESRCH)
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
