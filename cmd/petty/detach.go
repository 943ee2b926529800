package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// Status lines the supervisor writes on its status pipe.
const (
	statusOK    = "ok "
	statusError = "error "
)

// runDetached is petty run --detach: it records the VM, hands its spec to a
// supervisor process (petty __supervise) that creates it and stays with it,
// and prints the VM's name once its agent answered.
//
// The VM needs a process that outlives this one: its VMM's output is a pipe
// that someone must keep draining (a VMM writing to a closed pipe dies of
// SIGPIPE), and someone must reap it. The supervisor runs in its own session,
// writes the console to console.log in the VM's run directory (capped at
// consoleLimit bytes), and destroys the VM's run directory when the VMM exits.
func (a *app) runDetached(ctx context.Context, f *vmFlags, name string, consoleLimit int64, restore string) (retErr error) {
	if name == "" {
		name = generateName()
	} else if !namePattern.MatchString(name) {
		return usagef("--name %q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", name)
	}
	ctx, caught, stop := interruptible(ctx)
	defer stop()
	defer whenInterrupted(caught, &retErr)
	a.reclaim()

	prog := newProgress(a.stderr, a.verbose)
	defer prog.done()
	f.hostname = name
	var (
		cfg     vm.Config
		choice  vmmChoice
		scratch string
		err     error
	)
	if restore != "" { // petty run --restore DIR --detach (restore.go)
		cfg, err = a.restoreConfig(f, restore)
		choice = vmmChoice{vmm: cfg.VMM}
	} else {
		cfg, choice, scratch, err = a.prepare(ctx, f, prog)
	}
	if err != nil {
		return err
	}
	r := &record{Name: name, State: stateStarting, VMM: cfg.VMM, Created: time.Now().UTC()}
	if err := a.reserve(r); err != nil {
		return err
	}
	supervised := false
	defer func() {
		if !supervised {
			_ = a.forget(r)
			image.RemoveScratchDisk(scratch)
		}
	}()
	cfg.Logger, cfg.Console = nil, nil // the supervisor sets its own
	sp := spec{Name: name, Created: r.Created, Config: cfg, BootTimeout: f.bootTimeout, Verbose: a.verbose, ConsoleLimit: consoleLimit, Scratch: scratch, Restore: restore}
	c, status, err := a.spawnSupervisor(name, &sp)
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
		return errors.New(strings.TrimSpace(strings.ReplaceAll(strings.TrimPrefix(res.line, statusError), `\n`, "\n")))
	}
	_ = c.Wait()
	_ = a.forget(r)
	if caught() != 0 {
		return nil // whenInterrupted reports it
	}
	return fmt.Errorf("the supervisor of VM %s exited without booting it (%v); try petty -v run --detach", name, c.ProcessState)
}

// spawnSupervisor starts "petty __supervise NAME" in its own session, writes
// sp to its spec pipe, and returns it with the read end of its status pipe.
func (a *app) spawnSupervisor(name string, sp *spec) (*exec.Cmd, *os.File, error) {
	data, err := json.Marshal(sp)
	if err != nil {
		return nil, nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("locating the petty executable: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer devnull.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer statusW.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		return nil, nil, err
	}
	defer specR.Close()
	args := []string{superviseCmd, "--state-dir", a.stateDirPath()}
	if a.runDir != "" {
		args = append(args, "--run-dir", a.runDir)
	}
	c := exec.Command(exe, append(args, name)...)
	c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	c.ExtraFiles = []*os.File{statusW, specR} // fds 3 and 4
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		statusR.Close()
		specW.Close()
		return nil, nil, fmt.Errorf("starting the VM's supervisor: %w", err)
	}
	// The spec is far smaller than a pipe's buffer; the supervisor reads
	// it to EOF.
	_, werr := specW.Write(data)
	if err := errors.Join(werr, specW.Close()); err != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		statusR.Close()
		return nil, nil, fmt.Errorf("handing the spec to the VM's supervisor: %w", err)
	}
	return c, statusR, nil
}

// generateName returns a fresh VM name.
func generateName() string {
	var b [4]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return "petty-" + hex.EncodeToString(b[:])
}
