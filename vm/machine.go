package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/internal/privdir"
	"github.com/pettyvm/petty/qemu"
)

// Machine is one VM. Its methods are safe for concurrent use.
type Machine struct {
	id     string
	cfg    Config // defaulted, run-dir paths filled in; never modified after New
	runDir string
	log    *slog.Logger
	out    *console

	mu    sync.Mutex
	state State
	be    backend  // the current boot's backend; nil before the first Start
	proc  *process // the current boot's VMM; nil before the first Start
	// dirMade is set once Start created runDir; Destroy removes it only then.
	dirMade bool
	// vsockFile is a user-supplied Vsock.Path (outside runDir): vm removes
	// it only when it created it itself.
	vsockFile *ownedFile
	// destroyed is made by the first Destroy and closed once it is done.
	destroyed chan struct{}
	// restore, set by Restore, makes the next Start restore a snapshot
	// instead of booting; Start clears it.
	restore *restorePlan
	// snapMu serialises Snapshot calls.
	snapMu sync.Mutex
	// driveFiles holds the writable drives open while a VMM runs, for
	// Snapshot (snapshot.go).
	driveFiles map[string]*os.File
}

// New validates cfg, allocates an ID and returns a Machine in state Created.
// It has no side effects: it starts nothing and creates nothing (the run
// directory is made by the first Start). cfg is not modified and not
// retained: later changes to it do not affect the Machine.
func New(cfg Config) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	id := newID()
	runDir := filepath.Join(c.RunDir, id)
	if c.Vsock != nil && c.Vsock.Path == "" {
		c.Vsock.Path = filepath.Join(runDir, vsockSocketName)
	}
	if c.Network != nil && c.Network.MAC == "" {
		c.Network.MAC = newMAC()
	}
	m := &Machine{
		id:     id,
		cfg:    c,
		runDir: runDir,
		log:    c.Logger.With("vm", id),
		out:    newConsole(c.Console),
	}
	if v := c.Vsock; v != nil && filepath.Dir(v.Path) != runDir {
		m.vsockFile = &ownedFile{path: v.Path, what: "Vsock.Path"}
	}
	m.log.Debug("created", "vmm", c.VMM, "run_dir", runDir)
	return m, nil
}

// vsockSocketName is the default hybrid-vsock socket in the run directory.
const vsockSocketName = "vsock.sock"

// MakeRunDir creates the Machine's run directory now, as the first Start
// would (see makeRunDir), for a caller that keeps files of its own there
// (a console log) from before the boot. It is idempotent; Destroy removes
// the directory.
func (m *Machine) MakeRunDir() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == Destroyed {
		return opError("make run dir", m.id, ErrDestroyed)
	}
	if err := m.makeRunDir(); err != nil {
		return opError("make run dir", m.id, err)
	}
	return nil
}

// makeRunDir creates the Machine's run directory on its first boot: the run
// root is created or verified with privdir (0700, ours, not a symlink), and
// the per-VM directory is created exclusively (os.Mkdir, 0700), so that it is
// never shared with anything else. Later boots verify it. The caller holds
// m.mu.
func (m *Machine) makeRunDir() error {
	if m.dirMade {
		return privdir.Check(m.runDir)
	}
	if err := privdir.Ensure(m.cfg.RunDir); err != nil {
		return fmt.Errorf("run directory root: %w", err)
	}
	if err := os.Mkdir(m.runDir, 0o700); err != nil {
		return fmt.Errorf("create run directory: %w", err)
	}
	m.dirMade = true
	return nil
}

// Create is New followed by Start. When Start fails, the Machine is
// destroyed and only the error is returned.
func Create(ctx context.Context, cfg Config) (*Machine, error) {
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		_ = m.Destroy(context.WithoutCancel(ctx))
		return nil, err
	}
	return m, nil
}

// ID returns the Machine's unique ID.
func (m *Machine) ID() string { return m.id }

// RunDir returns the Machine's private run directory, <Config.RunDir>/<ID>.
// It exists from the first Start until Destroy.
func (m *Machine) RunDir() string { return m.runDir }

// Config returns a deep copy of the Machine's configuration, with defaults
// applied and run-directory paths filled in.
func (m *Machine) Config() Config { return m.cfg.clone() }

// State returns the current lifecycle state.
func (m *Machine) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// PID returns the VMM's process ID, or 0 when no VMM is running.
func (m *Machine) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.exited() {
		return 0
	}
	return m.proc.pid()
}

// ConsoleTail returns up to the last 64 KiB the VMM printed (the guest's
// serial console and the VMM's own messages).
func (m *Machine) ConsoleTail() []byte { return m.out.Tail(consoleTailSize) }

// Start spawns the VMM and boots the guest. ctx bounds the boot only: once
// Start has returned, cancelling ctx does nothing to the VM. Start on a
// Stopped Machine cold-boots a fresh VMM process with the same Config; drives
// keep their data. If the boot fails, the VMM is killed and reaped, and the
// Machine is Stopped.
func (m *Machine) Start(ctx context.Context) (retErr error) {
	m.mu.Lock()
	if m.destroyed != nil { // Destroy is under way, or done
		m.mu.Unlock()
		return opError("start", m.id, ErrDestroyed)
	}
	switch m.state {
	case Destroyed:
		m.mu.Unlock()
		return opError("start", m.id, ErrDestroyed)
	case Starting, Running, Paused:
		m.mu.Unlock()
		return opError("start", m.id, ErrAlreadyRunning)
	}
	if err := m.makeRunDir(); err != nil {
		m.mu.Unlock()
		return opError("start", m.id, err)
	}
	if err := m.openDrives(); err != nil { // snapshot.go
		m.mu.Unlock()
		return opError("start", m.id, err)
	}
	if err := m.vsockFile.claim(); err != nil {
		m.closeDrives()
		m.mu.Unlock()
		return opError("start", m.id, err)
	}
	be := m.newBackend()
	b := &boot{id: m.id, cfg: &m.cfg, runDir: m.runDir, restore: m.restore}
	m.restore = nil
	cmd, err := be.command(b)
	if err != nil {
		m.closeDrives()
		m.mu.Unlock()
		be.release()
		m.vsockFile.release()
		return opError("start", m.id, err)
	}
	began := time.Now()
	p, err := spawn(cmd, m.out, func(p *process) { m.reaped(p, be) })
	if err != nil {
		m.closeDrives()
		m.mu.Unlock()
		be.release()
		m.vsockFile.release()
		return opError("start", m.id, fmt.Errorf("spawn %s: %w", m.cfg.VMM, err))
	}
	b.exited = p.done
	m.state, m.be, m.proc = Starting, be, p
	m.mu.Unlock()
	m.log.Debug("vmm spawned", "pid", p.pid(), "argv", cmd.Args)

	defer func() {
		if retErr == nil {
			return
		}
		if ctx.Err() == nil && !isAPIError(retErr) {
			// A broken control connection usually means the VMM is dying:
			// give it a moment, so that its own last words make the error.
			waitUntil(context.Background(), p.done, time.Now().Add(vmmDeathGrace))
		}
		exitedOnItsOwn := p.exited()
		p.kill()
		if exitedOnItsOwn || !diedOfSIGKILL(p.state) {
			// The VMM died during the boot: its console tells why.
			retErr = errors.Join(retErr, p.exitError(m.out))
		}
		retErr = opError("start", m.id, retErr)
	}()
	if err := m.writeOwnerRecord(be, p); err != nil { // for Attach and Reclaim
		return err
	}
	if err := be.start(ctx, b); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != p || m.state != Starting {
		return ErrNotRunning // stopped while starting
	}
	m.state = Running
	m.log.Info("started", "pid", p.pid(), "boot", time.Since(began))
	return nil
}

// vmmDeathGrace is how long a failed Start waits for a VMM whose control
// connection broke to exit on its own before killing it.
const vmmDeathGrace = 500 * time.Millisecond

// isAPIError reports whether err is an answer from the VMM (it is alive).
func isAPIError(err error) bool {
	var ae *firecracker.APIError
	var qe *qemu.QMPError
	return errors.As(err, &ae) || errors.As(err, &qe)
}

// diedOfSIGKILL reports whether the reaped process ended by SIGKILL (petty's,
// as a rule). Any other end means that it exited on its own, even when it was
// reaped only after petty's SIGKILL (a late reaper, or output pipes that a
// descendant held open), and then its console tells why.
func diedOfSIGKILL(st *os.ProcessState) bool {
	if st == nil {
		return true
	}
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// reaped runs once the VMM process p of backend be has been reaped.
func (m *Machine) reaped(p *process, be backend) {
	be.release()
	m.vsockFile.release()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == p {
		m.closeDrives()
	}
	if m.proc == p && m.state != Destroyed {
		m.state = Stopped
	}
	m.log.Info("vmm exited", "pid", p.pid(), "status", p.state.String())
}

// current returns the current process and backend, or ErrDestroyed /
// ErrNotRunning when there is no live VMM.
func (m *Machine) current(want ...State) (*process, backend, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == Destroyed {
		return nil, nil, ErrDestroyed
	}
	for _, s := range want {
		if m.state == s {
			return m.proc, m.be, nil
		}
	}
	return nil, nil, ErrNotRunning
}

// Shutdown stops the VM gracefully and reaps the VMM. It asks the guest to
// power off (Firecracker: Ctrl-Alt-Del; guests boot with reboot=k), sends
// SIGTERM to the VMM when three quarters of the time to ctx's deadline have
// passed (DefaultShutdownTimeout when ctx has none), and SIGKILL at the
// deadline (at once when ctx is cancelled). It always reaps the VMM before returning. The error wraps
// ErrKilled and ctx's error when SIGKILL was needed. Shutdown is idempotent:
// it returns nil when no VMM runs, and concurrent calls all wait for the same
// exit.
func (m *Machine) Shutdown(ctx context.Context) error {
	p, be, err := m.current(Starting, Running, Paused)
	if err != nil {
		if errors.Is(err, ErrDestroyed) {
			return opError("shutdown", m.id, err)
		}
		return nil
	}
	ctx, cancel := withDefaultDeadline(ctx, DefaultShutdownTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	termAt := time.Now().Add(time.Until(deadline) * 3 / 4)

	if m.State() == Paused {
		if err := be.resume(ctx); err != nil {
			m.log.Debug("resume before shutdown", "err", err)
		}
	}
	if err := be.requestShutdown(ctx); err != nil {
		m.log.Debug("graceful shutdown request failed", "err", err)
	}
	if waitUntil(ctx, p.done, termAt) {
		return nil
	}
	m.log.Info("guest did not power off in time; sending SIGTERM", "pid", p.pid())
	_ = p.signal(syscall.SIGTERM)
	if waitUntil(ctx, p.done, deadline) {
		return nil
	}
	m.log.Warn("vmm did not exit by the deadline; sending SIGKILL", "pid", p.pid())
	p.kill()
	return opError("shutdown", m.id, fmt.Errorf("%w: %w", ErrKilled, ctx.Err()))
}

// Kill stops the VMM at once with SIGKILL and reaps it. It returns nil when no
// VMM runs.
func (m *Machine) Kill() error {
	p, _, err := m.current(Starting, Running, Paused)
	if err != nil {
		if errors.Is(err, ErrDestroyed) {
			return opError("kill", m.id, err)
		}
		return nil
	}
	p.kill()
	return nil
}

// Wait blocks until the current VMM exits or ctx ends. It returns nil when the
// VMM exited with status 0, an *ExitError otherwise, ctx's error when ctx
// ended first, and ErrNotRunning when the Machine was never started.
func (m *Machine) Wait(ctx context.Context) error {
	m.mu.Lock()
	p, st := m.proc, m.state
	m.mu.Unlock()
	if st == Destroyed {
		return opError("wait", m.id, ErrDestroyed)
	}
	if p == nil {
		return opError("wait", m.id, ErrNotRunning)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return opError("wait", m.id, ctx.Err())
	}
	if p.state.Success() {
		return nil
	}
	return opError("wait", m.id, p.exitError(m.out))
}

// Pause freezes the guest's vCPUs.
func (m *Machine) Pause(ctx context.Context) error {
	return m.transition(ctx, "pause", Running, Paused, backend.pause)
}

// Resume thaws a paused guest.
func (m *Machine) Resume(ctx context.Context) error {
	return m.transition(ctx, "resume", Paused, Running, backend.resume)
}

func (m *Machine) transition(ctx context.Context, op string, from, to State, call func(backend, context.Context) error) error {
	_, be, err := m.current(from)
	if err != nil {
		if errors.Is(err, ErrNotRunning) && from == Paused && m.State() == Running {
			err = ErrNotPaused
		}
		return opError(op, m.id, err)
	}
	if err := call(be, ctx); err != nil {
		return opError(op, m.id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.be == be && m.state == from {
		m.state = to
	}
	return nil
}

// Destroy stops the VM if it runs (as Shutdown(ctx) does) and removes every
// resource petty created for it: the run directory with its sockets, and
// the vsock socket when vm created it. It removes nothing it did not create.
// The Machine is unusable afterwards; Destroy is idempotent: a call made
// while another Destroy is under way waits for it (within its own ctx) and
// returns nil once everything is gone.
func (m *Machine) Destroy(ctx context.Context) error {
	done, first := m.beginDestroy()
	if !first {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return opError("destroy", m.id, ctx.Err())
		}
	}
	defer close(done)
	stopErr := m.Shutdown(ctx)
	m.mu.Lock()
	m.state = Destroyed
	be := m.be
	m.mu.Unlock()
	if be != nil {
		be.release()
	}
	var errs []error
	if errors.Is(stopErr, ErrKilled) {
		stopErr = nil // stopped all the same; nothing is left behind
	}
	errs = append(errs, stopErr)
	m.mu.Lock()
	dirMade := m.dirMade
	m.mu.Unlock()
	if dirMade {
		errs = append(errs, os.RemoveAll(m.runDir))
	}
	if err := errors.Join(errs...); err != nil {
		return opError("destroy", m.id, err)
	}
	m.log.Debug("destroyed")
	return nil
}

// beginDestroy returns the channel that is closed once the Machine has been
// destroyed, and whether the caller is the first Destroy, the one to do it.
// From then on Start fails with ErrDestroyed.
func (m *Machine) beginDestroy() (chan struct{}, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.destroyed != nil {
		return m.destroyed, false
	}
	m.destroyed = make(chan struct{})
	return m.destroyed, true
}

// newBackend returns a backend for the configured VMM.
func (m *Machine) newBackend() backend {
	switch m.cfg.VMM {
	case QEMU:
		return newQEMUBackend(m)
	default:
		return &firecrackerBackend{log: m.log}
	}
}

// withDefaultDeadline returns ctx bounded by d when ctx has no deadline.
func withDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// waitUntil waits for done until t or until ctx ends; it reports whether
// done was closed.
func waitUntil(ctx context.Context, done <-chan struct{}, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
}

// removeIfExists removes path; a missing path is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
