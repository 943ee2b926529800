package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// DefaultPort is the AF_VSOCK port petty-agent listens on by default.
const DefaultPort = wire.DefaultPort

// The host's default limits (see Option). The guest is untrusted: whatever
// numbers it sends, a Client never holds more than these.
const (
	// DefaultMaxOutput caps what Output collects, stdout and stderr
	// together.
	DefaultMaxOutput = 64 << 20
	// DefaultMaxReadFile caps what ReadFile collects.
	DefaultMaxReadFile = 256 << 20
	// streamBuffer caps the bytes a stream buffers beyond one frame: an
	// honest agent keeps at most OutputWindow chunks in flight (1 MiB).
	streamBuffer = 2 * wire.OutputWindow * wire.ChunkSize
)

// limits are a Client's host-side limits.
type limits struct {
	maxFrame     uint32 // largest frame body read
	streamBuffer int64  // bytes a stream's inbox may hold beyond one frame
	maxOutput    int64  // Output's cap
	maxReadFile  int64  // ReadFile's cap
}

// Option changes a Client's limits.
type Option func(*limits)

// WithMaxOutput sets the most bytes Output collects (stdout and stderr
// together); the rest is dropped and reported as ExitError.Truncated.
// n <= 0 restores DefaultMaxOutput.
func WithMaxOutput(n int64) Option {
	return func(l *limits) {
		if n <= 0 {
			n = DefaultMaxOutput
		}
		l.maxOutput = n
	}
}

// WithMaxReadFile sets the largest file ReadFile returns; a larger one
// fails with ErrTooLarge. n <= 0 restores DefaultMaxReadFile.
func WithMaxReadFile(n int64) Option {
	return func(l *limits) {
		if n <= 0 {
			n = DefaultMaxReadFile
		}
		l.maxReadFile = n
	}
}

// Client is the host side of the agent protocol. It is safe for concurrent
// use; many calls (including many Execs) share one connection.
//
// The agent is untrusted, and a Client holds its own limits whatever it
// sends: a frame's header is checked against wire.MaxFrameSize before its
// body is allocated; each call buffers at most wire.StreamInbox frames and
// 2 MiB beyond one frame, and an agent that sends more than the credits it
// was granted fails that call with ErrProtocol while the reader, and so
// every other call, goes on; a frame for a stream the host never opened
// fails the connection (ErrProtocol and ErrClosed); Output and ReadFile
// collect at most DefaultMaxOutput and DefaultMaxReadFile bytes; a call
// whose ctx ends is deregistered and returns at once, or, when the agent
// stopped reading, within 250 ms (a write it was blocked in is given that
// long to finish; a frame cut in the middle closes the connection), a
// stream within 250 ms more spent telling the agent to stop. So the
// memory a misbehaving agent can make a Client hold is bounded by one
// frame being read plus, per call in progress, one frame and 2 MiB, plus
// what Output and ReadFile collect.
type Client struct {
	w   *wireClient
	lim limits

	closeOnce sync.Once
	closeErr  error
}

// PingInfo describes a running agent.
type PingInfo struct {
	Version string        // the agent's Version
	Uptime  time.Duration // since the agent started
	PID     int           // the agent's process id (1 inside a guest)
}

// NewClient returns a Client speaking the agent protocol on conn, which it
// takes ownership of: Close closes it. For a serial port, run
// SerialHandshake on conn first. The Client has no goroutine of its own
// when conn supports deadlines: callers read their replies themselves (see
// wireClient).
func NewClient(conn net.Conn, opts ...Option) *Client {
	lim := limits{
		maxFrame:     wire.MaxFrameSize,
		streamBuffer: streamBuffer,
		maxOutput:    DefaultMaxOutput,
		maxReadFile:  DefaultMaxReadFile,
	}
	for _, o := range opts {
		o(&lim)
	}
	return &Client{w: newWireClient(conn, lim), lim: lim}
}

// Close closes the connection. Calls in progress fail with ErrClosed, and the
// agent kills the commands they started. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		if err := c.w.close(ErrClosed); err != nil && !errors.Is(err, net.ErrClosed) {
			c.closeErr = err
		}
	})
	return c.closeErr
}

// Ping checks that the agent is alive and describes it.
func (c *Client) Ping(ctx context.Context) (PingInfo, error) {
	var resp agentpb.PingResponse
	if err := c.w.call(ctx, wire.MethodPing, &agentpb.PingRequest{}, &resp); err != nil {
		return PingInfo{}, err
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
	return c.w.call(ctx, wire.MethodShutdown, &agentpb.ShutdownRequest{Reboot: reboot}, &resp)
}

// Refresh tells the agent of a VM restored from a snapshot that it is a new
// machine: it mixes entropy (at least 32 bytes, from a cryptographic source)
// into the guest kernel's RNG and reseeds it, sets the guest's wall clock to
// now, and sets its host name unless hostname is empty. vm.Restore calls it;
// an agent that is not PID 1 inside a guest refuses (FailedPrecondition).
func (c *Client) Refresh(ctx context.Context, entropy []byte, now time.Time, hostname string) error {
	var resp agentpb.RefreshResponse
	return c.w.call(ctx, wire.MethodRefresh, &agentpb.RefreshRequest{
		Entropy: entropy, UnixNano: now.UnixNano(), Hostname: hostname,
	}, &resp)
}
