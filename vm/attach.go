package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	mdvsock "github.com/mdlayher/vsock"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/internal/pidfd"
	"github.com/pettyvm/petty/internal/privdir"
	"github.com/pettyvm/petty/internal/retry"
	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/vsock"
)

// attachKillWait bounds how long Kill waits for an attached VMM to exit.
const attachKillWait = 5 * time.Second

// Attached is a VM that another process started and owns (a detached
// VM's supervisor, say), reached through its run directory. It can talk to
// the guest agent and stop the VMM, but it does not own the VM: the owner
// reaps the VMM and removes the run directory. Its methods are safe for
// concurrent use.
type Attached struct {
	runDir string
	rec    *ownerRecord

	mu  sync.Mutex
	vmm *pidfd.Process // nil once the VMM is known to be gone, or after Close
}

// Attach attaches to the VM whose run directory is runDir (see
// Machine.RunDir). Its owner record is untrusted data: the run directory
// must be a private directory of ours (not a symlink), the record a private
// regular file of ours whose socket names lie inside the run directory, and
// the VMM is only believed to run when a process with the recorded PID and
// start time has a command line naming the run directory; it is then held
// through a pidfd, so that no signal can hit a process that reused its PID.
// A VM whose VMM has exited attaches in state Stopped. The caller calls
// Close.
func Attach(runDir string) (*Attached, error) {
	if !filepath.IsAbs(runDir) {
		return nil, fmt.Errorf("vm: attach %s: the run directory must be an absolute path", runDir)
	}
	runDir = filepath.Clean(runDir)
	if err := privdir.Check(runDir); err != nil {
		return nil, fmt.Errorf("vm: attach: %w", err)
	}
	rec, err := readOwnerRecord(runDir)
	if err != nil {
		return nil, fmt.Errorf("vm: attach: %w", err)
	}
	p, err := rec.openVMM(runDir)
	if err != nil {
		return nil, opError("attach", rec.ID, err)
	}
	return &Attached{runDir: runDir, rec: rec, vmm: p}, nil
}

// ID returns the VM's ID.
func (a *Attached) ID() string { return a.rec.ID }

// VMM returns which VMM runs the VM.
func (a *Attached) VMM() VMM { return a.rec.VMM }

// RunDir returns the VM's run directory.
func (a *Attached) RunDir() string { return a.runDir }

// proc returns the VMM while it runs, nil once it exited or after Close.
func (a *Attached) proc() *pidfd.Process {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.vmm == nil || a.vmm.Exited() {
		return nil
	}
	return a.vmm
}

// PID returns the VMM's process ID, or 0 when it no longer runs.
func (a *Attached) PID() int {
	if p := a.proc(); p != nil {
		return p.PID()
	}
	return 0
}

// State returns Running while the VMM runs, Stopped once it exited.
func (a *Attached) State() State {
	if a.proc() != nil {
		return Running
	}
	return Stopped
}

// OwnerAlive reports whether the process that owns the VM still runs.
func (a *Attached) OwnerAlive() bool {
	alive, _ := a.rec.ownerAlive()
	return alive
}

// Agent connects to the guest agent and returns a client once the agent
// has answered a Ping, retrying until then, until the VMM exits, or until
// ctx ends; ctx bounds the connection attempts only. The caller closes the
// Client.
func (a *Attached) Agent(ctx context.Context) (*agent.Client, error) {
	p := a.proc()
	if p == nil {
		return nil, opError("agent", a.rec.ID, ErrNotRunning)
	}
	exited := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		if p.Wait(wctx) == nil {
			close(exited)
		}
	}()
	var c *agent.Client
	err := retry.Do(ctx, retry.Backoff{Min: agentRetryMin, Max: agentRetryMax, Stop: exited}, func(ctx context.Context) error {
		conn, err := dialAttachedAgent(ctx, a.runDir, a.rec)
		if err != nil {
			return err
		}
		client := agent.NewClient(conn)
		pctx, cancel := context.WithTimeout(ctx, agentPingBudget)
		defer cancel()
		if _, err := client.Ping(pctx); err != nil {
			_ = client.Close()
			return fmt.Errorf("ping: %w", err)
		}
		c = client
		return nil
	})
	if errors.Is(err, retry.ErrStopped) {
		err = fmt.Errorf("%w: %w", ErrNotRunning, err)
	}
	if err != nil {
		return nil, opError("agent", a.rec.ID, err)
	}
	return c, nil
}

// dialAttachedAgent makes one authenticated connection to the agent of the
// VM recorded in rec: Firecracker's hybrid vsock (CONNECT 1024), QEMU's
// vhost-vsock, or, for QEMU's virtio-serial channel, the agent.Mux that the
// VM's owner serves on AgentMuxSocket in the run directory (no serial
// handshake: the owner holds the one serial session). Every connection then
// authenticates with the boot's token (ReadAgentToken). This is the one
// place where an attached VM's agent channel is chosen. Errors that
// retrying cannot cure (no channel, no token, a refused token) are
// retry.Permanent.
func dialAttachedAgent(ctx context.Context, runDir string, rec *ownerRecord) (net.Conn, error) {
	token, err := ReadAgentToken(runDir)
	if err != nil {
		return nil, retry.Permanent(err)
	}
	var conn net.Conn
	switch {
	case rec.VMM == Firecracker && rec.VsockSocket != "":
		conn, err = vsock.Dial(ctx, rec.path(runDir, rec.VsockSocket), agentPort)
	case rec.VMM == QEMU && rec.VsockCID != 0:
		conn, err = mdvsock.DialContext(ctx, rec.VsockCID, agentPort, nil)
	case rec.VMM == QEMU && rec.AgentSocket != "":
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", filepath.Join(runDir, AgentMuxSocket))
	default:
		return nil, retry.Permanent(fmt.Errorf("%w: no agent channel recorded", ErrNoVsock))
	}
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, agentPingBudget)
	defer cancel()
	if err := agent.Authenticate(actx, conn, token); err != nil {
		if authRefused(err) {
			return nil, retry.Permanent(err)
		}
		return nil, err // it closed conn
	}
	return conn, nil
}

// Shutdown stops the VM gracefully, as Machine.Shutdown does: it asks the
// guest to power off (QEMU: the agent's Shutdown, else the ACPI power
// button; Firecracker: Ctrl-Alt-Del), sends the VMM SIGTERM when three
// quarters of the time to ctx's deadline have passed
// (DefaultShutdownTimeout when ctx has none) and SIGKILL at the deadline (at
// once when ctx is cancelled). It returns by the deadline; the error wraps
// ErrKilled when SIGKILL was needed. It returns nil when the VMM is gone.
func (a *Attached) Shutdown(ctx context.Context) error {
	p := a.proc()
	if p == nil {
		return nil
	}
	ctx, cancel := withDefaultDeadline(ctx, DefaultShutdownTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	termAt := time.Now().Add(time.Until(deadline) * 3 / 4)

	rctx, rcancel := context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/4))
	_ = a.requestShutdown(rctx)
	rcancel()
	if waitProc(ctx, p, termAt) {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	if waitProc(ctx, p, deadline) {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return opError("shutdown", a.rec.ID, err)
	}
	return opError("shutdown", a.rec.ID, fmt.Errorf("%w: %w", ErrKilled, ctx.Err()))
}

// requestShutdown asks the guest to power off, within ctx.
func (a *Attached) requestShutdown(ctx context.Context) error {
	api := a.rec.path(a.runDir, a.rec.APISocket)
	if a.rec.VMM == Firecracker {
		c := firecracker.NewClient(api)
		defer c.Close()
		return c.SendCtrlAltDel(ctx)
	}
	agentErr := func() error {
		actx, cancel := context.WithTimeout(ctx, agentShutdownTimeout)
		defer cancel()
		conn, err := dialAttachedAgent(actx, a.runDir, a.rec)
		if err != nil {
			return err
		}
		c := agent.NewClient(conn)
		defer c.Close()
		return c.Shutdown(actx, false)
	}()
	if agentErr == nil {
		return nil
	}
	q, err := qemu.DialQMP(ctx, api)
	if err != nil {
		return errors.Join(agentErr, err)
	}
	defer q.Close()
	return errors.Join(agentErr, q.SystemPowerdown(ctx))
}

// waitProc waits for p to exit until t or until ctx ends; it reports whether
// p exited.
func waitProc(ctx context.Context, p *pidfd.Process, t time.Time) bool {
	wctx, cancel := context.WithDeadline(ctx, t)
	defer cancel()
	return p.Wait(wctx) == nil
}

// Kill sends the VMM SIGKILL and waits (up to 5 s) for it to exit. It
// returns nil when the VMM is gone.
func (a *Attached) Kill() error {
	p := a.proc()
	if p == nil {
		return nil
	}
	if err := p.Kill(attachKillWait); err != nil {
		return opError("kill", a.rec.ID, err)
	}
	return nil
}

// Wait blocks until the VMM exits or ctx ends; it returns nil or ctx's
// error. (The VMM's exit status belongs to its owner.)
func (a *Attached) Wait(ctx context.Context) error {
	p := a.proc()
	if p == nil {
		return nil
	}
	if err := p.Wait(ctx); err != nil {
		return opError("wait", a.rec.ID, err)
	}
	return nil
}

// Close releases what Attach holds (a pidfd); the VM is not affected.
func (a *Attached) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.vmm != nil {
		err := a.vmm.Close()
		a.vmm = nil
		return err
	}
	return nil
}
