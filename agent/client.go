package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/pettyvm/petty/agent/agentpb"
)

// Client is the host side of the agent protocol. It is safe for concurrent
// use; many calls (including many Execs) share one connection.
type Client struct {
	w *wireClient

	closeOnce sync.Once
	closeErr  error
}

// PingInfo describes a running agent.
type PingInfo struct {
	Version string        // the agent's Version
	Uptime  time.Duration // since the agent started
	PID     int           // the agent's process id (1 inside a guest)
}

// NewClient returns a Client speaking ttrpc on conn, which it takes
// ownership of: Close closes it. For a serial port, run SerialHandshake on
// conn first. The Client has no goroutine of its own: callers read their
// replies themselves (see wireClient).
func NewClient(conn net.Conn) *Client {
	return &Client{w: newWireClient(conn)}
}

// Close closes the connection. Calls in progress fail with ErrClosed, and the
// agent kills the commands they started. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if err := c.w.close(ttrpc.ErrClosed); err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = err
		}
	})
	return c.closeErr
}

// Ping checks that the agent is alive and describes it.
func (c *Client) Ping(ctx context.Context) (PingInfo, error) {
	var resp agentpb.PingResponse
	if err := c.w.call(ctx, "Ping", &agentpb.PingRequest{}, &resp); err != nil {
		return PingInfo{}, fromRemote(err)
	}
	return PingInfo{
		Version: resp.Version,
		Uptime:  time.Duration(resp.UptimeNs),
		PID:     int(resp.Pid),
	}, nil
}

// Shutdown asks the agent to stop. Inside a guest (the agent is PID 1) it
// syncs file systems and powers off, or restarts if reboot is set; anywhere
// else the agent process just exits. The connection closes soon after.
func (c *Client) Shutdown(ctx context.Context, reboot bool) error {
	var resp agentpb.ShutdownResponse
	return fromRemote(c.w.call(ctx, "Shutdown", &agentpb.ShutdownRequest{Reboot: reboot}, &resp))
}
