package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/sandbox"
)

// Options configure the server.
type Options struct {
	// Name and Version identify the server to clients.
	Name, Version string
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
	// ProgressInterval is how often a long command sends progress
	// notifications when the client asked for them. Default: 5 s.
	ProgressInterval time.Duration
}

// Server adapts a sandbox.Manager to MCP.
type Server struct {
	mgr  *sandbox.Manager
	log  *slog.Logger
	tick time.Duration
	mcp  *mcp.Server
	sess sessions
}

// New returns an MCP server whose tools drive mgr. The caller owns mgr
// (and closes it when the sessions end). A sandbox lives as long as the
// session that created it: when the session ends (the client closes it,
// an HTTP session is deleted or expires), its sandboxes are destroyed.
func New(mgr *sandbox.Manager, opts Options) *Server {
	if opts.Name == "" {
		opts.Name = "petty"
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 5 * time.Second
	}
	s := &Server{mgr: mgr, log: opts.Logger, tick: opts.ProgressInterval,
		sess: sessions{owned: map[*mcp.ServerSession]*owned{}}}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: opts.Name, Version: opts.Version}, &mcp.ServerOptions{
		Logger:       opts.Logger,
		Instructions: "petty runs commands and code in throwaway microVM sandboxes: create_sandbox, then run_command/execute_code and the file tools; destroy_sandbox when done (sandboxes also expire).",
	})
	s.addTools()
	return s
}

// MCP returns the go-sdk server, to Run on a transport or to serve over
// HTTP.
func (s *Server) MCP() *mcp.Server { return s.mcp }

// Run serves one session on t until the client disconnects or ctx ends.
func (s *Server) Run(ctx context.Context, t mcp.Transport) error { return s.mcp.Run(ctx, t) }

// sandbox finds the sandbox id, with an error a model can act on.
func (s *Server) sandbox(id string) (*sandbox.Sandbox, error) {
	if id == "" {
		return nil, errors.New("sandbox_id is required")
	}
	sb, err := s.mgr.Get(id)
	if err != nil {
		return nil, fmt.Errorf("unknown or destroyed sandbox %q (list_sandboxes shows the live ones)", id)
	}
	return sb, nil
}

// progress sends a progress notification when the client asked for them.
type progress struct {
	req   *mcp.CallToolRequest
	token any
	n     float64
}

func newProgress(req *mcp.CallToolRequest) *progress {
	p := &progress{req: req}
	if req != nil && req.Params != nil {
		p.token = req.Params.GetProgressToken()
	}
	return p
}

func (p *progress) send(ctx context.Context, msg string) {
	if p.token == nil || p.req.Session == nil {
		return
	}
	p.n++
	_ = p.req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: p.token, Progress: p.n, Message: msg})
}

// ticking sends progress every interval until stop is called.
func (p *progress) ticking(ctx context.Context, interval time.Duration, msg string) (stop func()) {
	if p.token == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.send(ctx, msg)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}
