package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/pettyvm/petty/internal/pidfd"
	"github.com/pettyvm/petty/vm"
)

// startingGrace is how long after its creation a "starting" record that
// names no supervisor yet is still believed to be starting (the supervisor
// records itself as soon as it runs).
const startingGrace = 10 * time.Second

// supervisorWait bounds the wait for a supervisor to finish once its VMM is
// gone.
const supervisorWait = 5 * time.Second

// supervisor returns the live supervisor of r, verified by its start time
// and its command line (petty __supervise ... NAME), or nil.
func supervisor(r *record) (*pidfd.Process, error) {
	return pidfd.Open(r.SupervisorPID, r.SupervisorStart, "\x00"+superviseCmd+"\x00", "\x00"+r.Name+"\x00")
}

// attach attaches to r's VM through vm.Attach when r names a run directory
// petty may act on; nil when there is none (the VM exited, or never got
// that far).
func (a *app) attach(r *record) (*vm.Attached, error) {
	dir, err := a.attachable(r)
	if err != nil || dir == "" {
		return nil, err
	}
	att, err := vm.Attach(dir)
	if err != nil {
		a.logger().Debug("not attachable", "vm", r.Name, "err", err)
		return nil, nil
	}
	return att, nil
}

// view is a record as the host shows it now: state and VMM pid.
type view struct {
	state string
	pid   int
}

// liveState is r's state as the host shows it now: running while its VMM
// lives, starting while its supervisor boots it, corrupt for a record that
// failed validation, exited otherwise. It changes nothing.
func (a *app) liveState(r *record) view {
	if r.corrupt != nil {
		return view{state: stateCorrupt}
	}
	if r.State == stateStarting {
		if p, _ := supervisor(r); p != nil {
			p.Close()
			return view{state: stateStarting}
		}
		if r.SupervisorPID == 0 && time.Since(r.Created) < startingGrace {
			return view{state: stateStarting} // the supervisor has not recorded itself yet
		}
		return view{state: stateExited}
	}
	att, err := a.attach(r)
	if err != nil || att == nil {
		return view{state: stateExited}
	}
	defer att.Close()
	if pid := att.PID(); pid != 0 {
		return view{state: stateRunning, pid: pid}
	}
	return view{state: stateExited}
}

// stopVM stops the VM of r and removes everything petty kept for it. With
// graceful, it is vm.Attached.Shutdown within timeout (the guest is asked to
// power off; SIGTERM at three quarters of timeout, SIGKILL at timeout);
// without, SIGKILL at once. Its supervisor then removes the run directory
// and exits; run directories whose owner is dead are reclaimed. The record
// of a corrupt entry is removed, and nothing else.
func (a *app) stopVM(r *record, timeout time.Duration, graceful bool) error {
	if r.corrupt != nil {
		a.logger().Debug("removing a corrupt record", "vm", r.Name, "why", r.corrupt)
		return a.forget(r)
	}
	var errs []error
	att, err := a.attach(r)
	if err != nil {
		errs = append(errs, err)
	}
	if att != nil {
		if graceful {
			a.logger().Debug("asking the guest to power off", "vm", r.Name)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			err := att.Shutdown(ctx)
			cancel()
			if err != nil && !errors.Is(err, vm.ErrKilled) {
				errs = append(errs, err)
			}
		} else {
			errs = append(errs, att.Kill())
		}
		att.Close()
	}
	sup, err := supervisor(r)
	if err != nil {
		errs = append(errs, err)
	}
	if sup != nil {
		if att == nil && r.State == stateStarting {
			_ = sup.Signal(syscall.SIGTERM) // destroy what it is booting
		}
		ctx, cancel := context.WithTimeout(context.Background(), supervisorWait)
		if sup.Wait(ctx) != nil {
			if err := sup.Kill(time.Second); err != nil {
				errs = append(errs, fmt.Errorf("the supervisor of VM %s: %w", r.Name, err))
			}
		}
		cancel()
		sup.Close()
	}
	a.reclaim()
	errs = append(errs, a.forget(r))
	return errors.Join(errs...)
}
