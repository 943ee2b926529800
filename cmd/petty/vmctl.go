package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/vm"
)

// startingGrace is how long after its boot timeout a "starting" record
// whose supervisor cannot be found is still believed to be starting.
const startingGrace = 10 * time.Second

// supervisorWait bounds the wait for a supervisor to finish once its VMM is
// gone.
const supervisorWait = 5 * time.Second

// vmmProc returns the live VMM of r, verified by its command line naming
// r's run directory, or nil.
func vmmProc(r *record) (*pidProc, error) {
	if r.RunDir == "" {
		return nil, nil
	}
	return openProc(r.PID, r.RunDir)
}

// supervisorProc returns the live supervisor of r, verified by its command
// line, or nil.
func supervisorProc(r *record) (*pidProc, error) {
	return openProc(r.SupervisorPID, "\x00"+superviseCmd+"\x00", "\x00"+r.Name+"\x00")
}

// liveState is r's state as the host shows it now: running while its VMM
// lives, starting while its supervisor boots it, exited otherwise.
func (a *app) liveState(r *record) string {
	if r.State == stateStarting {
		if p, _ := supervisorProc(r); p != nil {
			p.close()
			return stateStarting
		}
		if time.Since(r.Created) < r.Spec.BootTimeout+startingGrace {
			return stateStarting // the supervisor may not have recorded itself yet
		}
		return stateExited
	}
	if p, _ := vmmProc(r); p != nil {
		p.close()
		return stateRunning
	}
	return stateExited
}

// stopVM stops the VM of r and removes everything petty kept for it. With
// graceful, the guest is first asked to power off; SIGTERM follows after
// three quarters of timeout, SIGKILL at timeout. Without, the VMM gets
// SIGKILL at once.
func (a *app) stopVM(r *record, timeout time.Duration, graceful bool) error {
	var errs []error
	vmm, err := vmmProc(r)
	if err != nil {
		errs = append(errs, err)
	}
	if vmm != nil {
		defer vmm.close()
		if graceful {
			deadline := time.Now().Add(timeout)
			a.logger().Debug("asking the guest to power off", "vm", r.Name)
			powerOff(r, timeout/4)
			if !vmm.wait(time.Until(deadline) * 3 / 4) {
				errs = append(errs, vmm.stop(time.Until(deadline)))
			}
		} else {
			errs = append(errs, vmm.kill())
		}
	}
	sup, err := supervisorProc(r)
	if err != nil {
		errs = append(errs, err)
	}
	if sup != nil {
		defer sup.close()
		if vmm == nil && r.State == stateStarting {
			_ = sup.signal(syscall.SIGTERM) // destroy what it is booting
		}
		if !sup.wait(supervisorWait) {
			errs = append(errs, sup.kill())
		}
	}
	errs = append(errs, removeRunDir(r), a.forget(r))
	return errors.Join(errs...)
}

// powerOff asks the guest to power off: Ctrl-Alt-Del through Firecracker's
// API (guests boot with reboot=k), or the agent's Shutdown under QEMU.
func powerOff(r *record, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if r.VMM == vm.QEMU {
		c, err := connectAgent(ctx, r)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.Shutdown(ctx, false)
		return
	}
	c := firecracker.NewClient(r.APISocket)
	defer c.Close()
	_ = c.SendCtrlAltDel(ctx)
}

// removeRunDir removes r's run directory, after checking that the record
// names one petty made (a directory named after the VM's ID).
func removeRunDir(r *record) error {
	if r.RunDir == "" || r.ID == "" {
		return nil
	}
	if !filepath.IsAbs(r.RunDir) || filepath.Base(r.RunDir) != r.ID {
		return fmt.Errorf("not removing %q: it is not the run directory of VM %s", r.RunDir, r.ID)
	}
	if err := os.RemoveAll(r.RunDir); err != nil {
		return fmt.Errorf("removing the run directory: %w", err)
	}
	return nil
}
