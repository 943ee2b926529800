package guest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/pettyvm/petty/agent/wire"
)

// Serial transport, the agent's side (the handshake is described in package
// wire; agent.SerialHandshake is the host's side).
//
// After READY the host authenticates (see serialAuth), then frames follow.
// Until it sees a sync line the agent discards input. While serving, the
// agent checks each frame header:
// a repeated sync line with the current nonce (one the host sent before it
// saw READY) is skipped; a sync line with a new nonce ends the session and
// is answered at once (a new host connection); anything else malformed ends
// the session and returns to scanning for sync lines. Ending a session
// closes its connection, which kills the commands it started.

// parseSync returns the nonce of a sync line (without its newline) that may
// be preceded by garbage, or "" when line holds none.
func parseSync(line []byte) string {
	i := bytes.LastIndex(line, []byte(wire.SyncPrefix))
	if i < 0 {
		return ""
	}
	nonce := line[i+len(wire.SyncPrefix):]
	if len(nonce) == 0 || len(nonce) > wire.MaxNonceLen {
		return ""
	}
	for _, c := range nonce {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return ""
		}
	}
	return string(nonce)
}

// scanSync discards input until a sync line and returns its nonce.
func scanSync(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return "", err
		}
		if b != '\n' {
			line = append(line, b)
			if len(line) > 2*wire.MaxSyncLine { // keep only the tail
				line = append(line[:0], line[len(line)-wire.MaxSyncLine:]...)
			}
			continue
		}
		if nonce := parseSync(line); nonce != "" {
			return nonce, nil
		}
		line = line[:0]
	}
}

// readLine reads one line of at most wire.MaxSyncLine bytes; longer lines are
// returned truncated (and are never valid sync lines).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			return line, nil
		}
		if len(line) > wire.MaxSyncLine {
			return line, nil
		}
		line = append(line, b)
	}
}

// ServeSerial serves the agent protocol on a single byte stream such as
// /dev/virtio-ports/NAME, one host session at a time (see SerialHandshake).
// It returns when reading port fails, or ErrServerClosed after Close. If port
// is an io.Closer, Close closes it.
func (s *Server) ServeSerial(port io.ReadWriter) error {
	s.init()
	if c, ok := port.(io.Closer); ok {
		if !s.track(c) {
			return ErrServerClosed
		}
		defer s.untrack(c)
	}
	var sessions sync.WaitGroup
	defer sessions.Wait()

	w := &sessionWriter{w: port}
	br := bufio.NewReaderSize(port, 64<<10)
	nonce := ""
	for {
		if nonce == "" {
			var err error
			if nonce, err = scanSync(br); err != nil {
				return s.serialErr(err)
			}
		}
		w.begin()
		if _, err := w.write([]byte(wire.ReadyPrefix + nonce + "\n")); err != nil {
			return s.serialErr(err)
		}
		s.logger().Debug("serial session", "nonce", nonce)
		if next, ok, err := s.serialAuth(br, writeFunc(w.write), nonce); err != nil {
			return s.serialErr(err)
		} else if !ok {
			nonce = next
			continue
		}
		pr, pw := io.Pipe()
		sess := &serialConn{r: pr, w: w, gen: w.generation()}
		if !s.track(sess) {
			return ErrServerClosed
		}
		sessions.Go(func() {
			defer s.untrack(sess)
			s.serveConn(sess)
		})
		next, err := pumpFrames(br, pw, nonce)
		w.end() // no more writes from this session's connection
		pw.CloseWithError(io.EOF)
		if err != nil {
			return s.serialErr(err)
		}
		nonce = next
	}
}

func (s *Server) serialErr(err error) error {
	if s.isClosed() {
		return ErrServerClosed
	}
	return err
}

// pumpFrames copies well-formed frames from br to the session until
// the session ends. It returns the nonce of a new host's sync line, or ""
// to go back to scanning; a non-nil error means reading the port failed.
func pumpFrames(br *bufio.Reader, session io.Writer, nonce string) (string, error) {
	for {
		first, err := br.Peek(1)
		if err != nil {
			return "", err
		}
		if first[0] == 'P' {
			line, err := readLine(br)
			if err != nil {
				return "", err
			}
			switch n := parseSync(line); n {
			case nonce:
				continue // a repeat sent before the host saw READY
			default:
				return n, nil // "" (garbage) or a new host session
			}
		}
		hdr, err := br.Peek(wire.HeaderLen)
		if err != nil {
			return "", err
		}
		if wire.CheckHeader(hdr) != nil {
			return "", nil
		}
		n := int64(wire.HeaderLen) + int64(binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.CopyN(session, br, n); err != nil {
			if errors.Is(err, io.ErrClosedPipe) {
				// The session's connection closed; rescan from here.
				return "", nil
			}
			return "", err
		}
	}
}

// sessionWriter serialises writes to the port and fences off sessions that
// ended, so a dead session's late responses never follow a new READY line.
type sessionWriter struct {
	mu  sync.Mutex
	w   io.Writer
	gen uint64
	on  bool
}

func (w *sessionWriter) begin() {
	w.mu.Lock()
	w.gen++
	w.on = true
	w.mu.Unlock()
}

func (w *sessionWriter) end() {
	w.mu.Lock()
	w.on = false
	w.mu.Unlock()
}

func (w *sessionWriter) generation() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}

func (w *sessionWriter) write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *sessionWriter) writeGen(gen uint64, p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.on || w.gen != gen {
		return 0, net.ErrClosed
	}
	return w.w.Write(p)
}

// serialConn is one host session on a serial port, as a connection to
// serve.
type serialConn struct {
	r   *io.PipeReader
	w   *sessionWriter
	gen uint64
}

func (c *serialConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *serialConn) Write(p []byte) (int, error) { return c.w.writeGen(c.gen, p) }
func (c *serialConn) Close() error                { return c.r.CloseWithError(io.ErrClosedPipe) }
