package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"

	"github.com/pettyvm/petty/agent/agentpb"
)

// Version is the agent version reported by Ping. Release builds set it with
// -ldflags '-X github.com/pettyvm/petty/agent.Version=v1.2.3'.
var Version = "dev"

// ErrServerClosed is returned by Serve and ServeSerial after Close or
// Shutdown.
var ErrServerClosed = errors.New("agent: server closed")

// processStart is when this process started serving, for Ping's uptime.
var processStart = time.Now()

// Server is the guest side of the agent protocol. The zero value is ready to
// use; set fields before the first Serve call and do not change them after.
type Server struct {
	// Logger receives diagnostics. Nil means slog.Default().
	Logger *slog.Logger

	// Token, if not empty, is the secret every connection's auth line must
	// carry (see CheckAuth); empty accepts any auth line.
	Token string

	// guest is set by Run only when the agent is PID 1; it is what allows
	// reaping orphans and powering off. An in-process Server never has it.
	guest *guestInit

	// inertOnly refuses Exec, ReadFile and WriteFile (PermissionDenied); the
	// fuzz test sets it so that random frames cannot touch the host.
	inertOnly bool

	once sync.Once
	ts   *ttrpc.Server
	svc  *service
	err  error

	fastActive atomic.Int32 // synchronous unary calls in progress (fastpath.go)

	mu       sync.Mutex
	closed   bool
	conns    map[io.Closer]struct{}
	shutdown chan struct{} // closed by the Shutdown RPC
	reboot   bool
}

func (s *Server) init() error {
	s.once.Do(func() {
		s.shutdown = make(chan struct{})
		s.conns = make(map[io.Closer]struct{})
		s.ts, s.err = ttrpc.NewServer()
		if s.err == nil {
			s.svc = &service{srv: s}
			agentpb.RegisterAgentService(s.ts, s.svc)
		}
	})
	return s.err
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// track registers c to be closed by Close; it reports false (and closes c)
// when the server is already closed.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Serve accepts connections on l (AF_VSOCK or unix) and serves each until it
// closes. It returns ErrServerClosed after Close or Shutdown. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		l.Close()
		return err
	}
	if !s.track(l) {
		return ErrServerClosed
	}
	defer s.untrack(l)
	err := s.ts.Serve(context.Background(), &guardListener{Listener: l, srv: s})
	if s.isClosed() || errors.Is(err, ttrpc.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ShutdownRequested is closed when a client calls the Shutdown RPC.
func (s *Server) ShutdownRequested() <-chan struct{} {
	_ = s.init()
	return s.shutdown
}

// requestShutdown records a Shutdown RPC; only the first one counts.
func (s *Server) requestShutdown(reboot bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.shutdown:
	default:
		s.reboot = reboot
		close(s.shutdown)
	}
}

// Close closes all listeners, serial ports and connections immediately.
// Running commands lose their connection and are killed.
func (s *Server) Close() error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[io.Closer]struct{}{}
	s.mu.Unlock()
	err := s.ts.Close()
	for c := range conns {
		c.Close()
	}
	return err
}

// Shutdown stops accepting connections and waits for active calls to finish
// until ctx is done, then closes everything like Close.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.init(); err != nil {
		return err
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	// Let synchronous calls (the Shutdown RPC among them) write their
	// responses; ttrpc only knows about its own.
	for s.fastActive.Load() > 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	err := s.ts.Shutdown(ctx)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// guardListener wraps accepted connections in a guardConn.
type guardListener struct {
	net.Listener
	srv *Server
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		g := &guardConn{Conn: l.srv.authenticated(c), log: l.srv.logger(), answer: l.srv.answerRequest}
		g.onClose = func() { l.srv.untrack(g) }
		if l.srv.track(g) {
			return g, nil
		}
	}
}
