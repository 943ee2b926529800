package mcpserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/sandbox"
)

// sessionDestroyTimeout bounds the destruction of one sandbox whose session
// ended.
const sessionDestroyTimeout = 30 * time.Second

// sessions ties sandboxes to the MCP session that created them: when a
// session ends (stdin closed, an HTTP session deleted or expired), its
// sandboxes are destroyed.
type sessions struct {
	mu    sync.Mutex
	owned map[*mcp.ServerSession]*owned
}

// owned is a session's sandboxes.
type owned struct {
	ids   map[string]bool
	ended bool
}

// own records that ss created sandbox id; the first sandbox of a session
// starts a goroutine that waits for the session's end. If ss already ended,
// own destroys the sandbox at once.
func (s *Server) own(ss *mcp.ServerSession, id string) {
	if ss == nil {
		return
	}
	s.sess.mu.Lock()
	o, ok := s.sess.owned[ss]
	if !ok {
		o = &owned{ids: map[string]bool{}}
		s.sess.owned[ss] = o
		go func() {
			_ = ss.Wait()
			s.sessionEnded(ss)
		}()
	}
	if o.ended {
		s.sess.mu.Unlock()
		s.destroyOwned(ss, id)
		return
	}
	o.ids[id] = true
	s.sess.mu.Unlock()
}

// disown forgets sandbox id (destroyed by a call).
func (s *Server) disown(id string) {
	s.sess.mu.Lock()
	defer s.sess.mu.Unlock()
	for _, o := range s.sess.owned {
		delete(o.ids, id)
	}
}

// sessionEnded destroys the sandboxes of ss.
func (s *Server) sessionEnded(ss *mcp.ServerSession) {
	s.sess.mu.Lock()
	o := s.sess.owned[ss]
	o.ended = true
	ids := o.ids
	o.ids = nil
	s.sess.mu.Unlock()
	for id := range ids {
		s.destroyOwned(ss, id)
	}
	s.sess.mu.Lock()
	delete(s.sess.owned, ss)
	s.sess.mu.Unlock()
}

func (s *Server) destroyOwned(ss *mcp.ServerSession, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), sessionDestroyTimeout)
	defer cancel()
	err := s.mgr.Destroy(ctx, id)
	switch {
	case err == nil:
		s.log.Info("session ended: sandbox destroyed", "session", ss.ID(), "sandbox", id)
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, sandbox.ErrClosed):
	default:
		s.log.Warn("session ended: destroying its sandbox", "session", ss.ID(), "sandbox", id, "err", err)
	}
}
