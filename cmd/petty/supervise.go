package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/pidfd"
	"github.com/pettyvm/petty/vm"
)

// superviseCmd is the hidden command that owns a detached VM.
const superviseCmd = "__supervise"

// The supervisor's inherited pipes: ExtraFiles[0] and [1].
const (
	supervisorStatusFD = 3 // it writes "ok <id>" or "error <message>"
	supervisorSpecFD   = 4 // it reads the spec (JSON) to EOF
)

// maxSpecSize bounds the spec read from the pipe.
const maxSpecSize = 1 << 20

// spec is what the supervisor needs to create a detached VM. It travels
// over an inherited pipe from the petty run --detach that made it, never
// through a file another process could write.
type spec struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Config has no Logger and no Console (the supervisor sets its own).
	Config       vm.Config     `json:"config"`
	BootTimeout  time.Duration `json:"boot_timeout"`
	Verbose      bool          `json:"verbose,omitempty"`
	ConsoleLimit int64         `json:"console_limit"`
	// Scratch is the VM's scratch disk, which the supervisor unlinks once
	// the VM booted or failed to (see scratch.go); "" for none.
	Scratch string `json:"scratch,omitempty"`
	// Restore, when set, is the snapshot directory the VM is restored
	// from (petty run --restore); Config then carries only RunDir,
	// FirecrackerBin and VMM, and Tap in Config.Network when given.
	Restore string `json:"restore,omitempty"`
}

func (a *app) superviseCommand() *cobra.Command {
	return &cobra.Command{
		Use:    superviseCmd + " NAME",
		Short:  "Own a detached VM (internal; started by petty run --detach)",
		Hidden: true,
		Args:   exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			status := os.NewFile(supervisorStatusFD, "status")
			specR := os.NewFile(supervisorSpecFD, "spec")
			if status == nil || specR == nil {
				return usagef("%s is started by petty run --detach", superviseCmd)
			}
			return a.supervise(args[0], status, specR)
		},
	}
}

// readSpec reads the spec of the VM name from r, to EOF.
func readSpec(r io.ReadCloser, name string) (*spec, error) {
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the VM's spec: %w", err)
	}
	if len(data) > maxSpecSize {
		return nil, errors.New("the VM's spec is too large")
	}
	var s spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("the VM's spec: %w", err)
	}
	if s.Name != name {
		return nil, fmt.Errorf("the spec is for VM %q, not %q", s.Name, name)
	}
	return &s, nil
}

// supervise creates the VM described by the spec it reads from specR,
// reports on status ("ok <id>" once its agent answered, or "error
// <message>"), then stays until the VMM exits or a signal asks it to
// destroy the VM.
func (a *app) supervise(name string, status io.WriteCloser, specR io.ReadCloser) (retErr error) {
	reported := false
	report := func(line string) {
		if !reported {
			reported = true
			fmt.Fprintln(status, line)
			status.Close()
		}
	}
	defer func() {
		if retErr != nil {
			report(statusError + strings.ReplaceAll(retErr.Error(), "\n", `\n`))
		}
	}()
	s, err := readSpec(specR, name)
	if err != nil {
		return err
	}
	defer image.RemoveScratchDisk(s.Scratch) // at the latest
	self, err := pidfd.StartTime(os.Getpid())
	if err != nil {
		return err
	}
	r := &record{
		Name: name, State: stateStarting, VMM: s.Config.VMM, Created: s.Created,
		SupervisorPID: os.Getpid(), SupervisorStart: self,
	}
	if err := a.save(r); err != nil {
		return err
	}
	ctx, caught, stop := interruptible(context.Background())
	defer stop()

	console := &consoleLog{}
	defer console.close()
	cfg := s.Config
	cfg.Console = console
	cfg.Logger = nil
	if s.Verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var m *vm.Machine
	bctx, cancel := context.WithTimeout(ctx, s.BootTimeout)
	defer cancel()
	if s.Restore != "" {
		// The console's first bytes, before the run directory exists, are
		// dropped (see consoleLog).
		m, err = vm.Restore(bctx, s.Restore, restoreOptions(cfg, name))
		if err != nil {
			_ = a.forget(r)
			return bootError(ctx, err, s.BootTimeout, nil)
		}
	} else if m, err = vm.New(cfg); err != nil {
		_ = a.forget(r)
		return err
	}
	destroy := func(d time.Duration) {
		dctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_ = m.Destroy(dctx)
	}
	console.open(filepath.Join(m.RunDir(), consoleLogName), s.ConsoleLimit)

	if s.Restore == "" {
		err = m.Start(bctx)
		if err == nil {
			var c interface{ Close() error }
			c, err = m.Agent(bctx)
			if err == nil {
				_ = c.Close()
			}
		}
	}
	image.RemoveScratchDisk(s.Scratch) // the VMM holds it open
	if err == nil {
		err = console.ensure() // petty logs finds it even if the guest is quiet
	}
	var stopControl func()
	if err == nil {
		stopControl, err = serveControl(m) // petty snapshot (snapshot.go)
	}
	if err != nil {
		tail := m.ConsoleTail()
		_ = m.Kill()
		destroy(time.Second)
		_ = a.forget(r)
		return bootError(ctx, err, s.BootTimeout, tail)
	}

	r.ID, r.State, r.PID, r.RunDir = m.ID(), stateRunning, m.PID(), m.RunDir()
	if err := a.save(r); err != nil {
		_ = m.Kill()
		destroy(time.Second)
		_ = a.forget(r)
		return err
	}
	report(statusOK + m.ID())
	defer stopControl()

	_ = m.Wait(ctx) // until the VMM exits, or a signal
	if caught() != 0 {
		destroy(vm.DefaultShutdownTimeout)
		_ = a.forget(r)
		return nil
	}
	// The VMM is gone: free its run directory. The record stays, so that
	// petty ls reports the VM as exited until petty rm.
	destroy(time.Second)
	return nil
}
