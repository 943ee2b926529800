package agent

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/pettyvm/petty/agent/agentpb"
)

// Client is the host side of the agent protocol. It is safe for concurrent
// use; many calls (including many Execs) share one connection.
type Client struct {
	tc  *ttrpc.Client
	api agentpb.AgentClient

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
// conn first.
func NewClient(conn net.Conn) *Client {
	tc := ttrpc.NewClient(conn)
	return &Client{tc: tc, api: agentpb.NewAgentClient(tc)}
}

// Close closes the connection. Calls in progress fail with ErrClosed, and the
// agent kills the commands they started. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.tc.Close() })
	return c.closeErr
}

// Ping checks that the agent is alive and describes it.
func (c *Client) Ping(ctx context.Context) (PingInfo, error) {
	resp, err := c.api.Ping(ctx, &agentpb.PingRequest{})
	if err != nil {
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
	_, err := c.api.Shutdown(ctx, &agentpb.ShutdownRequest{Reboot: reboot})
	return fromRemote(err)
}
