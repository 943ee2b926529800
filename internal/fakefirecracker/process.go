package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)

// proc is what must be undone when the fake exits: the fake guest's process
// group and the guest directory it created. The API socket and the vsock
// socket are left in place, as Firecracker leaves them.
var proc struct {
	mu        sync.Mutex
	guestPgid int
	removeDir string
}

// exit kills the fake guest, removes the directory the fake created and
// exits. Concurrent callers block until the process is gone.
func exit(code int) {
	proc.mu.Lock() // never unlocked: the process ends here
	if proc.guestPgid > 0 {
		_ = syscall.Kill(-proc.guestPgid, syscall.SIGKILL)
	}
	if proc.removeDir != "" {
		_ = os.RemoveAll(proc.removeDir)
	}
	os.Exit(code)
}

// makeGuestDir creates dir (0700) if needed; a directory the fake creates is
// removed when it exits.
func makeGuestDir(dir string) error {
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.removeDir == dir {
		return nil
	}
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	proc.removeDir = dir
	return nil
}

// startGuest runs cmd with /bin/sh -c in its own process group, its output on
// the serial console. When the guest exits on its own the VM is gone: the
// fake exits 0, as Firecracker does when the guest reboots.
func startGuest(cmd, guestDir string) error {
	c := exec.Command("/bin/sh", "-c", cmd)
	c.Stdin = nil
	c.Stdout = os.Stdout
	c.Stderr = os.Stderr
	c.Env = os.Environ()
	if guestDir != "" {
		c.Env = append(c.Env, "FAKEFC_GUEST_DIR="+guestDir)
	}
	// Pdeathsig covers the fake being SIGKILLed: the shell (often exec'd into
	// the guest command) dies with it. Linux sends it when the forking
	// *thread* exits, so one goroutine locked to its thread starts the guest
	// and waits for it; the thread lives until the fake exits.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the fake exits below
		proc.mu.Lock()
		err := c.Start()
		if err == nil {
			proc.guestPgid = c.Process.Pid
		}
		proc.mu.Unlock()
		started <- err
		if err != nil {
			return
		}
		err = c.Wait()
		fmt.Fprintf(os.Stdout, "[    9.000000] fake guest: exited (%v); reboot: Restarting system\n", exitDesc(err))
		exit(0)
	}()
	return <-started
}

func exitDesc(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// signalGuest sends sig to the fake guest's process group, if any.
func signalGuest(sig syscall.Signal) {
	proc.mu.Lock()
	defer proc.mu.Unlock()
	if proc.guestPgid > 0 {
		_ = syscall.Kill(-proc.guestPgid, sig)
	}
}
