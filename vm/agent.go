package vm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/retry"
)

// Backoff and per-attempt bound of Agent.
const (
	agentRetryMin   = 5 * time.Millisecond
	agentRetryMax   = 250 * time.Millisecond
	agentPingBudget = 2 * time.Second
)

// Agent connects to the guest agent (vsock port 1024 under Firecracker, the
// agent's channel under QEMU) and returns a client once the agent has
// answered a Ping. It retries, closing every failed connection, until the
// agent answers, the VMM exits, or ctx ends; ctx bounds the connection
// attempts only, not the returned Client. The caller closes the Client.
//
// Every connection authenticates with the boot's token (see AgentTokenFile).
// Under QEMU without /dev/vhost-vsock the channel is a single virtio-serial
// stream, shared by an agent.Mux: any number of Clients, in this process and
// others (AgentMuxSocket), make calls at once. A Client's methods are safe
// for concurrent use too.
func (m *Machine) Agent(ctx context.Context) (*agent.Client, error) {
	p, be, err := m.current(Running, Paused)
	if err != nil {
		return nil, opError("agent", m.id, err)
	}
	// The backend's dial retries until its ctx ends: end it when the VMM
	// exits, so that a dead VM fails fast with its console tail.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-dctx.Done():
		}
	}()
	var c *agent.Client
	err = retry.Do(dctx, retry.Backoff{Min: agentRetryMin, Max: agentRetryMax, Stop: p.done},
		func(ctx context.Context) error {
			var err error
			c, err = tryAgent(ctx, be)
			if authRefused(err) {
				return retry.Permanent(err) // retrying cannot help
			}
			if err != nil {
				m.log.Debug("agent not ready", "err", err)
			}
			return err
		})
	switch {
	case err == nil:
		return c, nil
	case authRefused(err):
		return nil, opError("agent", m.id, err)
	case p.exited():
		return nil, opError("agent", m.id, errors.Join(ErrNotRunning, p.exitError(m.out)))
	}
	// dctx ended because ctx did: report ctx's error with the last attempt's.
	return nil, opError("agent", m.id, err)
}

// tryAgent makes one attempt: dial (the backend retries until the channel
// accepts), authenticate with the boot's token and Ping, bounded by
// agentPingBudget so that a connection nobody serves cannot hang it. The
// connection is closed on failure.
func tryAgent(ctx context.Context, be backend) (*agent.Client, error) {
	conn, err := be.dialAgent(ctx)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, agentPingBudget)
	defer cancel()
	if err := agent.Authenticate(pctx, conn, be.agentToken()); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err // it closed conn
	}
	c := agent.NewClient(conn)
	if _, err := c.Ping(pctx); err != nil {
		_ = c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ping: %w", err)
	}
	return c, nil
}

// authRefused reports whether the agent refused the boot's token:
// retrying cannot help.
func authRefused(err error) bool { return errors.Is(err, agent.ErrRefused) }
