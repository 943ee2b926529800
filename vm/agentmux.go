package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/retry"
)

// The serial agent channel, multiplexed.
//
// QEMU's virtio-serial port is one byte stream, and a new host session on
// it ends the previous one. So the QEMU backend connects to it once per
// boot, in the background as soon as the guest runs (handshake and auth
// with the boot's token), and shares that connection through an agent.Mux:
// in this process through pipes (dialAgent), and for other processes (the
// CLI's exec into a detached VM) on AgentMuxSocket in the run directory.
// Downstream connections authenticate with the same token. Should the
// connection end while the VMM runs, the backend connects again.

// AgentMuxSocket is the name, in a QEMU VM's run directory, of the unix
// socket (mode 0600) on which the VM's serial agent channel is shared once
// the agent answered. Connections to it speak the agent's protocol,
// starting with agent.Authenticate with the token in AgentTokenFile.
const AgentMuxSocket = "agent-mux.sock"

// qemuConfigName is the -readconfig file carrying the kernel command line.
const qemuConfigName = "qemu.cfg"

// muxRetryMax caps the backoff between attempts to reconnect the channel.
const muxRetryMax = time.Second

// startMux starts the background connection to the serial agent channel,
// unless the backend was released already.
func (q *qemuBackend) startMux(b *boot) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.released {
		return ErrNotRunning
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.stopMux = cancel
	q.muxChanged = make(chan struct{})
	q.muxWG.Go(func() {
		defer cancel()
		go func() {
			select {
			case <-b.exited:
				cancel()
			case <-ctx.Done():
			}
		}()
		q.runMux(ctx)
	})
	return nil
}

// errMuxEnded is a Mux whose upstream ended without an error of its own.
var errMuxEnded = errors.New("agent mux ended")

// runMux keeps the channel's Mux up until ctx ends (the VMM's exit ends
// it too): whenever the connection ends, it connects again, with a backoff
// capped at muxRetryMax.
func (q *qemuBackend) runMux(ctx context.Context) {
	_ = retry.Do(ctx, retry.Backoff{Min: 10 * time.Millisecond, Max: muxRetryMax, Stop: q.boot.exited},
		func(ctx context.Context) error {
			err := q.serveMux(ctx)
			if err != nil && ctx.Err() == nil {
				q.log.Debug("qemu: agent channel", "err", err)
				q.mu.Lock()
				q.muxErr = err
				q.mu.Unlock()
			}
			if err == nil {
				err = errMuxEnded
			}
			return err
		})
}

// serveMux connects the channel once, publishes its Mux, and serves it until
// the connection ends or ctx does.
func (q *qemuBackend) serveMux(ctx context.Context) error {
	up, err := retryDial(ctx, q.boot.exited, func(ctx context.Context) (_ net.Conn, retErr error) {
		defer func() {
			if retErr != nil {
				q.mu.Lock()
				q.muxErr = retErr
				q.mu.Unlock()
			}
		}()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", q.spec.AgentSocket)
		if err != nil {
			return nil, err
		}
		if err := agent.SerialHandshake(ctx, conn); err != nil {
			return nil, err // SerialHandshake closed conn
		}
		actx, cancel := context.WithTimeout(ctx, agentPingBudget)
		defer cancel()
		if err := agent.Authenticate(actx, conn, q.token); err != nil {
			return nil, err // Authenticate closed conn
		}
		return conn, nil
	})
	if err != nil {
		return err
	}
	m := agent.NewMux(up)
	m.Token, m.Logger = q.token, q.log
	defer m.Close()

	sock := filepath.Join(q.boot.runDir, AgentMuxSocket)
	if err := removeIfExists(sock); err != nil {
		return err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("agent mux: %w", err)
	}
	defer removeIfExists(sock)
	if err := os.Chmod(sock, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("agent mux: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve(l) }()
	defer func() { <-served }()

	q.setMux(m)
	defer q.setMux(nil)
	select {
	case <-m.Done():
		return m.Err()
	case <-ctx.Done():
		m.Close()
		return ctx.Err()
	}
}

// setMux publishes the current Mux (nil: none) and wakes its waiters.
func (q *qemuBackend) setMux(m *agent.Mux) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.mux = m
	close(q.muxChanged)
	q.muxChanged = make(chan struct{})
}

// dialMux returns a new connection to the channel's Mux, waiting until it is
// up, ctx ends or the VMM exits. The connection starts with the auth line.
func (q *qemuBackend) dialMux(ctx context.Context) (net.Conn, error) {
	for {
		q.mu.Lock()
		m, changed, released := q.mux, q.muxChanged, q.released
		q.mu.Unlock()
		if released || changed == nil {
			return nil, ErrNotRunning
		}
		if m != nil {
			select {
			case <-m.Done():
			default:
				mine, theirs := net.Pipe()
				go m.ServeConn(theirs)
				return mine, nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			q.mu.Lock()
			last := q.muxErr
			q.mu.Unlock()
			if last != nil {
				return nil, fmt.Errorf("%w (waiting for the agent's serial channel; last error: %w)", ctx.Err(), last)
			}
			return nil, fmt.Errorf("%w (waiting for the agent's serial channel)", ctx.Err())
		case <-q.boot.exited:
			return nil, fmt.Errorf("%w: the VMM exited", ErrNotRunning)
		}
	}
}

// stopMuxAndWait ends the background connection and waits for it.
func (q *qemuBackend) stopMuxAndWait() {
	q.mu.Lock()
	stop := q.stopMux
	q.mu.Unlock()
	if stop != nil {
		stop()
	}
	q.muxWG.Wait()
}
