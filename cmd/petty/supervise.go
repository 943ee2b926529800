package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/vm"
)

// superviseCmd is the hidden command that owns a detached VM.
const superviseCmd = "__supervise"

// Names in a detached VM's run directory that petty itself chooses (the
// VMM's sockets are named by package vm: firecracker.sock, qmp.sock,
// agent.sock).
const (
	consoleLogName  = "console.log"
	fcAPISocketName = "firecracker.sock"
	qmpSocketName   = "qmp.sock"
	qemuAgentSocket = "agent.sock"
)

func (a *app) superviseCommand() *cobra.Command {
	return &cobra.Command{
		Use:    superviseCmd + " NAME",
		Short:  "Own a detached VM (internal; started by petty run --detach)",
		Hidden: true,
		Args:   exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			status := os.NewFile(supervisorStatusFD, "status")
			if status == nil {
				return usagef("%s is started by petty run --detach", superviseCmd)
			}
			return a.supervise(args[0], status)
		},
	}
}

// supervise creates the VM recorded under name, reports on status
// ("ok <id>" once its agent answered, or "error <message>"), then stays
// until the VMM exits or a SIGTERM/SIGINT asks it to destroy the VM.
func (a *app) supervise(name string, status io.WriteCloser) (retErr error) {
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
	r, err := a.load(name)
	if err != nil {
		return err
	}
	ctx, interrupted, stop := interruptible(context.Background())
	defer stop()

	console := &lazyFile{}
	defer console.close()
	cfg := r.Spec.config()
	if cfg.VMM == vm.QEMU {
		cfg.Vsock = nil // the agent's channel is virtio-serial (see prepare)
	}
	cfg.Console = console
	if r.Spec.Verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(console, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := vm.New(cfg)
	if err != nil {
		_ = a.forget(r)
		return err
	}
	destroy := func(d time.Duration) {
		dctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_ = m.Destroy(dctx)
	}
	logPath := filepath.Join(m.RunDir(), consoleLogName)
	if err := console.open(logPath); err != nil {
		destroy(time.Second)
		_ = a.forget(r)
		return err
	}

	bctx, cancel := context.WithTimeout(ctx, r.Spec.BootTimeout)
	defer cancel()
	err = m.Start(bctx)
	if err == nil {
		var c interface{ Close() error }
		c, err = m.Agent(bctx)
		if err == nil {
			_ = c.Close()
		}
	}
	if err != nil {
		tail := m.ConsoleTail()
		_ = m.Kill()
		destroy(time.Second)
		_ = a.forget(r)
		return bootError(ctx, err, r.Spec.BootTimeout, tail)
	}

	r.ID, r.State, r.PID, r.SupervisorPID = m.ID(), stateRunning, m.PID(), os.Getpid()
	r.RunDir, r.ConsoleLog = m.RunDir(), logPath
	switch cfg.VMM {
	case vm.QEMU:
		r.APISocket = filepath.Join(m.RunDir(), qmpSocketName)
		r.AgentSocket = filepath.Join(m.RunDir(), qemuAgentSocket)
	default:
		r.APISocket = filepath.Join(m.RunDir(), fcAPISocketName)
		r.VsockPath = m.Config().Vsock.Path
	}
	if err := a.save(r); err != nil {
		_ = m.Kill()
		destroy(time.Second)
		_ = a.forget(r)
		return err
	}
	report(statusOK + m.ID())

	_ = m.Wait(ctx) // until the VMM exits, or a signal
	if interrupted() {
		destroy(vm.DefaultShutdownTimeout)
		_ = a.forget(r)
		return nil
	}
	// The VMM is gone: free its run directory. The record stays, so that
	// petty ls reports the VM as exited (and then forgets it).
	destroy(time.Second)
	return nil
}

// lazyFile is an io.Writer for a file opened after the writer was handed
// out (the console log lives in the run directory that vm.New creates).
// Writes before open, and after a failed write, are dropped.
type lazyFile struct {
	mu sync.Mutex
	f  *os.File
}

func (l *lazyFile) open(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.f = f
	l.mu.Unlock()
	return nil
}

func (l *lazyFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		if _, err := l.f.Write(p); err != nil {
			l.f.Close()
			l.f = nil
		}
	}
	return len(p), nil
}

func (l *lazyFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
