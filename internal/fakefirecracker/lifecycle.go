package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// runGate is open while the guest runs: vsock connections wait on it, as
// they wait on a guest that has not booted or is paused.
type runGate struct {
	mu sync.Mutex
	ch chan struct{}
}

func newRunGate() runGate { return runGate{ch: make(chan struct{})} }

func (g *runGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
}

func (g *runGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
		g.ch = make(chan struct{})
	default:
	}
}

// isOpen reports whether the guest runs now.
func (g *runGate) isOpen() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
		return true
	default:
		return false
	}
}

func (g *runGate) wait() {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	<-ch
}

// serialBoot is what the fake guest kernel prints on the serial console.
const serialBoot = "[    0.000000] Linux version 6.1.0-fake (fakefirecracker) #1 SMP\n" +
	"[    0.000000] Command line: %s\n" +
	"[    0.010000] fake guest: booted\n"

// instanceStartLocked boots the fake microVM.
func (v *vmm) instanceStartLocked() error {
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	if v.boot == nil {
		return faultf("Cannot start microvm without kernel configuration.")
	}
	if v.sw.crashAtStart {
		fmt.Fprintf(os.Stderr, "fake: crash at InstanceStart\n"+
			"thread 'fc_vmm' panicked at src/vmm/src/builder.rs:1:1:\n"+
			"called `Result::unwrap()` on an `Err` value: InjectedCrash\n"+
			"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n")
		exit(1)
	}
	if v.sw.startDelay > 0 {
		time.Sleep(v.sw.startDelay)
	}
	args := ""
	if v.boot.BootArgs != nil {
		args = *v.boot.BootArgs
	}
	fmt.Fprintf(os.Stdout, serialBoot, args)
	if err := v.startGuestLocked(); err != nil {
		return err
	}
	v.state = stateRunning
	v.gate.open()
	if v.logger != nil {
		v.logger.info("Successfully started microvm")
	}
	return nil
}

// sendCtrlAltDelLocked: the guest, booted with reboot=k, reboots and
// Firecracker exits, just after answering.
func (v *vmm) sendCtrlAltDelLocked() error {
	if err := v.requirePostBoot(); err != nil {
		return err
	}
	if v.sw.ignoreCtrlAltDel {
		fmt.Fprint(os.Stdout, "[    1.000000] fake guest: Ctrl-Alt-Del ignored\n")
		return nil
	}
	time.AfterFunc(10*time.Millisecond, func() {
		fmt.Fprint(os.Stdout, "[    1.000000] reboot: Restarting system\n")
		exit(0)
	})
	return nil
}

func (v *vmm) patchVMLocked(in *vmState) error {
	if err := require(field("state", in.State)); err != nil {
		return err
	}
	if err := checkEnum("state", in.State, "Paused", "Resumed"); err != nil {
		return err
	}
	if err := v.requirePostBoot(); err != nil {
		return err
	}
	if *in.State == "Paused" {
		v.state = statePaused
		v.gate.shut()
		signalGuest(sigStop)
		return nil
	}
	if !v.guestStarted { // restored without resume_vm (snapshot.go)
		return v.runRestoredLocked()
	}
	v.state = stateRunning
	signalGuest(sigCont)
	v.gate.open()
	return nil
}

// startGuestLocked creates the fake guest's directory and starts the fake
// guest command, if the switches name them, and marks the guest started.
func (v *vmm) startGuestLocked() error {
	guestDir := v.sw.guestDir
	if guestDir == "" && v.vsock != nil {
		guestDir = v.vsock.guestDir
	}
	if guestDir != "" {
		if err := makeGuestDir(guestDir); err != nil {
			return faultf("fake firecracker: cannot create the fake guest directory: %v", err)
		}
	}
	if v.sw.guestCmd != "" {
		if err := startGuest(v.sw.guestCmd, guestDir); err != nil {
			return faultf("fake firecracker: cannot start the fake guest: %v", err)
		}
	}
	v.guestStarted = true
	return nil
}
