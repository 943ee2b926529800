package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Status lines the supervisor writes on its status pipe (fd 3).
const (
	statusOK    = "ok "
	statusError = "error "
)

// supervisorStatusFD is the supervisor's status pipe: ExtraFiles[0].
const supervisorStatusFD = 3

// runDetached is petty run --detach: it records the VM, hands it to a
// supervisor process (petty __supervise) that creates it and stays with it,
// and prints the VM's name once its agent answered.
//
// The VM needs a process that outlives this one: its VMM's output is a pipe
// that someone must keep draining (a VMM writing to a closed pipe dies of
// SIGPIPE), and someone must reap it. The supervisor runs in its own session,
// writes the console to console.log in the VM's run directory, and destroys
// the VM's run directory when the VMM exits.
func (a *app) runDetached(ctx context.Context, f *vmFlags, name string) (retErr error) {
	if name == "" {
		name = generateName()
	} else if !namePattern.MatchString(name) {
		return usagef("--name %q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", name)
	}
	ctx, interrupted, stop := interruptible(ctx)
	defer stop()
	defer func() {
		if interrupted() {
			retErr = errInterrupted
		}
	}()

	prog := newProgress(a.stderr, a.verbose)
	defer prog.done()
	cfg, choice, err := a.prepare(ctx, f, prog)
	if err != nil {
		return err
	}
	r := &record{
		Name: name, State: stateStarting, VMM: cfg.VMM, Accel: choice.accel,
		Created: time.Now().UTC(), Spec: specOf(cfg, f.bootTimeout, a.verbose),
	}
	if err := a.reserve(r); err != nil {
		return err
	}
	supervised := false
	defer func() {
		if !supervised {
			_ = a.forget(r)
		}
	}()

	c, status, err := a.spawnSupervisor(name)
	if err != nil {
		return err
	}
	supervised = true // from here on the supervisor removes the record on failure
	prog.step("booting VM (%s)", describe(choice.vmm, choice.accel))

	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(status).ReadString('\n')
		ch <- result{line, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		_ = c.Process.Signal(syscall.SIGTERM) // it destroys the VM
		res = <-ch
	}
	status.Close()
	prog.done()

	switch {
	case strings.HasPrefix(res.line, statusOK):
		_ = c.Process.Release() // it lives on; init reaps it once we are gone
		fmt.Fprintln(a.stdout, name)
		return nil
	case strings.HasPrefix(res.line, statusError):
		_ = c.Wait()
		if interrupted() {
			return errInterrupted
		}
		return errors.New(strings.TrimSpace(strings.ReplaceAll(strings.TrimPrefix(res.line, statusError), `\n`, "\n")))
	}
	_ = c.Wait()
	_ = a.forget(r)
	if interrupted() {
		return errInterrupted
	}
	return fmt.Errorf("the supervisor of VM %s exited without booting it (%v); try petty -v run --detach", name, c.ProcessState)
}

// spawnSupervisor starts "petty __supervise NAME" in its own session, and
// returns it with the read end of its status pipe.
func (a *app) spawnSupervisor(name string) (*exec.Cmd, *os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("locating the petty executable: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer pw.Close()
	args := []string{superviseCmd, "--state-dir", a.stateDirPath()}
	if a.runDir != "" {
		args = append(args, "--run-dir", a.runDir)
	}
	c := exec.Command(exe, append(args, name)...)
	c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	c.ExtraFiles = []*os.File{pw} // fd 3 = supervisorStatusFD
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		pr.Close()
		return nil, nil, fmt.Errorf("starting the VM's supervisor: %w", err)
	}
	return c, pr, nil
}

// generateName returns a fresh VM name.
func generateName() string {
	var b [4]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return "petty-" + hex.EncodeToString(b[:])
}
