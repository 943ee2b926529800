package guest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Version is the agent version reported by Ping. Release builds set it with
// -ldflags '-X github.com/pettyvm/petty/internal/guest.Version=v1.2.3'.
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
	// carry (see wire.CheckAuth); empty accepts any auth line.
	Token string

	// guest is set by Run only when the agent is PID 1; it is what allows
	// reaping orphans and powering off. An in-process Server never has it.
	guest *guestInit

	// inertOnly refuses Exec, ReadFile and WriteFile (PermissionDenied); the
	// fuzz test sets it so that random frames cannot touch the host.
	inertOnly bool

	once sync.Once

	mu       sync.Mutex
	closed   bool
	conns    map[io.Closer]struct{}
	shutdown chan struct{} // closed by the Shutdown RPC
	closing  chan struct{} // closed by Close and Shutdown
	reboot   bool
	active   int           // calls in progress
	idle     chan struct{} // closed when active drops to 0
	answered chan struct{} // closed when the first call has ended
	serving  sync.WaitGroup
}

func (s *Server) init() {
	s.once.Do(func() {
		s.shutdown = make(chan struct{})
		s.closing = make(chan struct{})
		s.conns = make(map[io.Closer]struct{})
		s.idle = make(chan struct{})
		close(s.idle)
		s.answered = make(chan struct{})
	})
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

// begin counts a call in; false once the server is closed.
func (s *Server) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.active == 0 {
		s.idle = make(chan struct{})
	}
	s.active++
	return true
}

// end counts a call out.
func (s *Server) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 {
		close(s.idle)
	}
	if s.answered == nil { // a conn served without Serve (tests)
		return
	}
	select {
	case <-s.answered:
	default:
		close(s.answered)
	}
}

// firstAnswered is closed once the server's first call has ended.
func (s *Server) firstAnswered() <-chan struct{} {
	s.init()
	return s.answered
}

// Serve accepts connections on l (AF_VSOCK or unix) and serves each until it
// closes. It returns ErrServerClosed after Close or Shutdown, once the
// connections it accepted are done. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	if !s.track(l) {
		return ErrServerClosed
	}
	defer s.untrack(l)
	var conns sync.WaitGroup
	defer conns.Wait()
	delay := time.Duration(0)
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				l.Close()
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: the agent must not
			// die of it (as PID 1 it would power off). Wait and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logger().Warn("accept", "err", err, "retry in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.closedCh():
				t.Stop()
			}
			continue
		}
		delay = 0
		if !s.track(nc) {
			continue
		}
		conns.Go(func() {
			defer s.untrack(nc)
			if !s.authenticate(nc) {
				nc.Close()
				return
			}
			s.serveConn(nc)
		})
	}
}

// closedCh is closed once the server is closed.
func (s *Server) closedCh() <-chan struct{} {
	s.init()
	return s.closing
}

// markClosed records that the server is closed; s.mu must be held.
func (s *Server) markClosed() {
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ShutdownRequested is closed when a client calls the Shutdown RPC.
func (s *Server) ShutdownRequested() <-chan struct{} {
	s.init()
	return s.shutdown
}

// requestShutdown records a Shutdown RPC; only the first one counts.
func (s *Server) requestShutdown(reboot bool) {
	s.init()
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
	s.init()
	s.mu.Lock()
	s.markClosed()
	conns := s.conns
	s.conns = map[io.Closer]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	return nil
}

// Shutdown stops accepting connections and waits for active calls (the
// Shutdown call among them, whose reply must go out) to finish until ctx is
// done, then closes everything like Close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.markClosed()
	var ls []io.Closer
	for c := range s.conns {
		if l, ok := c.(net.Listener); ok {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	var err error
	for {
		s.mu.Lock()
		idle := s.idle
		s.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
		}
		s.mu.Lock()
		done := s.active == 0 || err != nil
		s.mu.Unlock()
		if done {
			break
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}
