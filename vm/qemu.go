package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	mdvsock "github.com/mdlayher/vsock"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/retry"
	"github.com/pettyvm/petty/qemu"
)

// Timeouts of the QEMU backend.
const (
	// agentShutdownTimeout bounds the attempt to power off through the
	// guest agent before falling back to the ACPI power button.
	agentShutdownTimeout = 2 * time.Second
	// qmpShutdownTimeout bounds the system_powerdown fallback.
	qmpShutdownTimeout = time.Second
	// qemuDialRetryMax caps the backoff between attempts to reach the agent.
	qemuDialRetryMax = 100 * time.Millisecond
)

// qemuBackend drives one qemu-system-x86_64 process (microvm machine)
// through QMP; the guest agent is reached over vhost-vsock or a
// virtio-serial port.
type qemuBackend struct {
	log  *slog.Logger
	spec qemu.Spec
	boot *boot

	// vsockDev opens /dev/vhost-vsock; vsockFile holds the boot's guest
	// CID (closed by release).
	vsockDev  vhostVsockDev
	vsockFile *os.File

	token string // the agent's token for this boot

	// memPath is the guest memory's file in the run directory, shared
	// with QEMU (cold boots; snapshot_qemu.go); "" for a restored VM,
	// whose memory is the snapshot's, mapped privately.
	memPath string
	// stateFile is the snapshot's device state QEMU reads at a restore
	// (restore_qemu.go), stateFD its descriptor number in QEMU.
	stateFile *os.File
	stateFD   int

	mu         sync.Mutex
	qmp        *qemu.QMP     // nil until start connected, and after release
	released   bool          // release ran: a late QMP connection is closed at once
	mux        *agent.Mux    // the serial channel's Mux while it is up (agentmux.go)
	muxChanged chan struct{} // closed when mux changes; nil without a serial channel
	stopMux    func()        // ends the serial channel's goroutine
	muxErr     error         // why the serial channel last failed
	muxWG      sync.WaitGroup
}

var _ backend = (*qemuBackend)(nil)

// newQEMUBackend returns the QEMU backend.
func newQEMUBackend(m *Machine) backend {
	return &qemuBackend{log: m.log, vsockDev: hostVhostVsock{}}
}

func (q *qemuBackend) command(b *boot) (*exec.Cmd, error) {
	h := probeHost(b.cfg.Accel)
	h.sandbox = qemu.SandboxSupported(b.cfg.QEMUBin)
	if b.restore != nil {
		if err := restoreHost(&h, b.restore); err != nil { // restore_qemu.go
			return nil, err
		}
	}
	q.boot = b
	cfg := b.cfg
	if cfg.Vsock != nil && h.vhostVsock {
		// vhost-vsock CIDs are global to the host: claim one that no other
		// VM holds, and hand QEMU the descriptor that holds it.
		f, cid, err := claimCID(q.vsockDev, cfg.Vsock.CID, randomCID)
		if err != nil {
			return nil, err
		}
		q.vsockFile = f
		c, v := *cfg, *cfg.Vsock
		v.CID, c.Vsock = cid, &v
		cfg = &c
	}
	q.spec = qemuSpec(b.id, cfg, b.runDir, h)
	if q.vsockFile != nil {
		q.spec.VsockFD = 3 // ExtraFiles[0]
	}
	if !h.sandbox {
		q.log.Debug("qemu: -sandbox not supported by this build; QEMU runs without its seccomp filter", "bin", b.cfg.QEMUBin)
	}
	if b.cfg.Accel == "auto" && q.spec.Accel == qemu.AccelTCG {
		q.log.Debug("qemu: KVM not usable", "why", h.kvmWhy)
	}
	if b.cfg.Vsock != nil && q.spec.VsockCID == 0 {
		q.log.Debug("qemu: /dev/vhost-vsock unavailable; agent channel is virtio-serial")
	}
	// QEMU refuses to listen on a socket path that exists.
	if err := q.removeSockets(); err != nil {
		return nil, err
	}
	// The kernel command line, with the agent's token, goes in a 0600 file
	// in the run directory: QEMU's argv is world-readable.
	tok, err := q.bootToken(b)
	if err != nil {
		return nil, err
	}
	q.token = tok
	q.spec.Cmdline = withToken(q.spec.Cmdline, tok)
	q.spec.ConfigPath = filepath.Join(b.runDir, qemuConfigName)
	if err := q.spec.WriteConfig(); err != nil {
		return nil, err
	}
	cmd := exec.Command(b.cfg.QEMUBin, q.spec.Args()...)
	cmd.Dir = b.runDir
	if q.vsockFile != nil {
		cmd.ExtraFiles = []*os.File{q.vsockFile}
	}
	if err := q.memoryArgs(b, cmd); err != nil { // snapshot_qemu.go
		return nil, err
	}
	return cmd, nil
}

func (q *qemuBackend) start(ctx context.Context, b *boot) error {
	if err := waitForSocket(ctx, q.spec.QMPSocket, b.exited); err != nil {
		return err
	}
	c, err := qemu.DialQMP(ctx, q.spec.QMPSocket)
	if err != nil {
		return err
	}
	q.mu.Lock()
	released := q.released
	if !released {
		q.qmp = c
	}
	q.mu.Unlock()
	if released { // QEMU exited and was reaped while we connected
		_ = c.Close()
		return ErrNotRunning
	}
	if b.restore != nil {
		if err := q.startIncoming(ctx, c); err != nil { // restore_qemu.go
			return err
		}
	}
	// QEMU runs the guest as soon as it is initialised (no -S); the boot is
	// acknowledged once QMP reports it running.
	return retry.Do(ctx, socketBackoff(b.exited), func(ctx context.Context) error {
		st, err := c.QueryStatus(ctx)
		if err != nil {
			return retry.Permanent(err)
		}
		switch st.Status {
		case "running":
			if q.spec.AgentSocket != "" {
				return retry.Permanent(q.startMux(b)) // nil stays nil
			}
			return nil
		case "prelaunch", "inmigrate", "restore-vm", "debug":
			return fmt.Errorf("qemu: guest is %q", st.Status)
		default:
			return retry.Permanent(fmt.Errorf("qemu: guest is %q, not running", st.Status))
		}
	})
}

// requestShutdown asks the guest agent to power off and falls back to the
// ACPI power button when the agent cannot be reached in time.
func (q *qemuBackend) requestShutdown(ctx context.Context) error {
	agentErr := q.agentShutdown(ctx)
	if agentErr == nil {
		return nil
	}
	q.log.Debug("qemu: agent shutdown failed; pressing the power button", "err", agentErr)
	c, err := q.client()
	if err != nil {
		return errors.Join(agentErr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, qmpShutdownTimeout)
	defer cancel()
	if err := c.SystemPowerdown(ctx); err != nil {
		return errors.Join(agentErr, err)
	}
	return nil
}

// agentShutdown calls the agent's Shutdown RPC, bounded by
// agentShutdownTimeout and a quarter of the time left to ctx's deadline.
func (q *qemuBackend) agentShutdown(ctx context.Context) error {
	timeout := agentShutdownTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d)/4)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := q.dialAgent(ctx)
	if err != nil {
		return err
	}
	if err := agent.Authenticate(ctx, conn, q.token); err != nil {
		return err
	}
	c := agent.NewClient(conn)
	defer c.Close()
	err = c.Shutdown(ctx, false)
	if err != nil {
		// The agent may power off before its answer gets out; the VMM
		// exiting is what counts.
		select {
		case <-q.boot.exited:
			return nil
		default:
		}
	}
	return err
}

func (q *qemuBackend) pause(ctx context.Context) error {
	c, err := q.client()
	if err != nil {
		return err
	}
	return c.Stop(ctx)
}

func (q *qemuBackend) resume(ctx context.Context) error {
	c, err := q.client()
	if err != nil {
		return err
	}
	return c.Cont(ctx)
}

func (q *qemuBackend) dialVsock(ctx context.Context, port uint32) (net.Conn, error) {
	if q.spec.VsockCID == 0 {
		return nil, fmt.Errorf("%w: /dev/vhost-vsock is not usable on this host (modprobe vhost_vsock)", ErrNoVsock)
	}
	return retryDial(ctx, q.boot.exited, func(ctx context.Context) (net.Conn, error) {
		return mdvsock.DialContext(ctx, q.spec.VsockCID, port, nil)
	})
}

// dialAgent connects to the agent over vhost-vsock, or to the Mux of the
// virtio-serial channel (see agentmux.go), waiting until it is up.
func (q *qemuBackend) dialAgent(ctx context.Context) (net.Conn, error) {
	if q.spec.VsockCID != 0 {
		return q.dialVsock(ctx, agentPort)
	}
	return q.dialMux(ctx)
}

func (q *qemuBackend) agentToken() string { return q.token }

func (q *qemuBackend) release() {
	q.mu.Lock()
	c := q.qmp
	q.qmp, q.released = nil, true
	q.mu.Unlock()
	q.stopMuxAndWait()
	if c != nil {
		_ = c.Close()
	}
	if q.vsockFile != nil {
		_ = q.vsockFile.Close() // frees the CID once QEMU's copy is gone too
	}
	q.closeStateFile()
	_ = q.removeSockets()
	if q.memPath != "" {
		_ = removeIfExists(q.memPath) // the guest's memory dies with it
	}
}

// client returns the QMP client, or ErrNotRunning before start connected
// it and after release.
func (q *qemuBackend) client() (*qemu.QMP, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.qmp == nil {
		return nil, ErrNotRunning
	}
	return q.qmp, nil
}

func (q *qemuBackend) removeSockets() error {
	var errs []error
	var mux string
	if q.spec.AgentSocket != "" {
		mux = filepath.Join(filepath.Dir(q.spec.AgentSocket), AgentMuxSocket)
	}
	for _, p := range []string{q.spec.QMPSocket, q.spec.AgentSocket, mux} {
		if p != "" {
			errs = append(errs, removeIfExists(p))
		}
	}
	return errors.Join(errs...)
}

// retryDial calls dial until it succeeds, ctx ends or the VMM exits, with a
// backoff from 1ms to qemuDialRetryMax. Once ctx ended, the error wraps ctx's
// error and the last attempt's.
func retryDial(ctx context.Context, exited <-chan struct{}, dial func(context.Context) (net.Conn, error)) (net.Conn, error) {
	var conn net.Conn
	err := retry.Do(ctx, retry.Backoff{Min: time.Millisecond, Max: qemuDialRetryMax, Stop: exited},
		func(ctx context.Context) error {
			c, err := dial(ctx)
			conn = c
			return err
		})
	if err != nil {
		return nil, err
	}
	return conn, nil
}
