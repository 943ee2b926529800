package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Serial transport.
//
// A virtio-serial port is one byte stream with no connect or disconnect
// events, and the guest drops whatever the host sent before the port was
// opened. So every host session starts with a handshake:
//
//	host:  PETTY-SYNC <nonce>\n    (repeated every syncInterval until answered)
//	agent: PETTY-READY <nonce>\n   (once per nonce)
//
// after which the host authenticates (see Authenticate) and both sides
// speak ttrpc. Until it sees a sync line the agent
// discards input. While serving, the agent checks each ttrpc frame header:
// a repeated sync line with the current nonce (one the host sent before it
// saw READY) is skipped; a sync line with a new nonce ends the session and
// is answered at once (a new host connection); anything else malformed ends
// the session and returns to scanning for sync lines. Ending a session
// closes its ttrpc connection, which kills the commands it started. ttrpc
// frames start with a zero byte (lengths are below 16 MiB), so a 'P' at a
// frame boundary is unambiguous.

const (
	syncPrefix   = "PETTY-SYNC "
	readyPrefix  = "PETTY-READY "
	syncInterval = 100 * time.Millisecond
	maxNonceLen  = 64
	maxSyncLine  = len(syncPrefix) + maxNonceLen + 1
)

// ErrHandshake is returned (wrapped) by SerialHandshake when the agent did
// not answer.
var ErrHandshake = errors.New("agent: serial handshake failed")

// SerialHandshake runs the host side of the serial handshake on conn: it
// writes sync lines until the agent answers with the matching ready line,
// discarding every byte before it. Afterwards conn carries ttrpc: pass it to
// NewClient. On failure (including ctx ending) it closes conn. It uses
// conn's deadlines while running and clears them before returning.
func SerialHandshake(ctx context.Context, conn net.Conn) (retErr error) {
	defer func() {
		if retErr != nil {
			conn.Close()
		}
	}()
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("%w: nonce: %w", ErrHandshake, err)
	}
	nonce := hex.EncodeToString(raw[:])
	syncLine := []byte(syncPrefix + nonce + "\n")
	want := []byte(readyPrefix + nonce)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		t := time.NewTicker(syncInterval)
		defer t.Stop()
		for {
			if _, err := conn.Write(syncLine); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	// ctx ending aborts the blocked read and any blocked write.
	unblock := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer func() {
		if !unblock() {
			retErr = fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
		}
	}()

	err := readUntilLine(conn, want)
	close(stop)
	if err != nil {
		conn.SetDeadline(time.Now()) // unblock the writer
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return nil
}

// readUntilLine reads r one byte at a time (so nothing after the line is
// consumed) until a line ending in want, then returns.
func readUntilLine(r io.Reader, want []byte) error {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return err
		}
		if b[0] != '\n' {
			if len(line) < 2*maxSyncLine {
				line = append(line, b[0])
			}
			continue
		}
		if bytes.HasSuffix(line, want) {
			return nil
		}
		line = line[:0]
	}
}

// parseSync returns the nonce of a sync line (without its newline) that may
// be preceded by garbage, or "" when line holds none.
func parseSync(line []byte) string {
	i := bytes.LastIndex(line, []byte(syncPrefix))
	if i < 0 {
		return ""
	}
	nonce := line[i+len(syncPrefix):]
	if len(nonce) == 0 || len(nonce) > maxNonceLen {
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
			if len(line) > 2*maxSyncLine { // keep only the tail
				line = append(line[:0], line[len(line)-maxSyncLine:]...)
			}
			continue
		}
		if nonce := parseSync(line); nonce != "" {
			return nonce, nil
		}
		line = line[:0]
	}
}

// readLine reads one line of at most maxSyncLine bytes; longer lines are
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
		if len(line) > maxSyncLine {
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
	if err := s.init(); err != nil {
		return err
	}
	if c, ok := port.(io.Closer); ok {
		if !s.track(c) {
			return ErrServerClosed
		}
		defer s.untrack(c)
	}
	l := newConnListener()
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.ts.Serve(context.Background(), l) }()
	defer func() {
		l.Close()
		<-serveErr
	}()

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
		if _, err := w.write([]byte(readyPrefix + nonce + "\n")); err != nil {
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
		if err := l.push(sess); err != nil {
			return ErrServerClosed
		}
		next, err := pumpFrames(br, pw, nonce)
		w.end() // no more writes from this session's ttrpc connection
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

// pumpFrames copies well-formed ttrpc frames from br to the session until
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
		hdr, err := br.Peek(frameHeaderLen)
		if err != nil {
			return "", err
		}
		if checkFrameHeader(hdr) != nil {
			return "", nil
		}
		n := int64(frameHeaderLen) + int64(binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.CopyN(session, br, n); err != nil {
			if errors.Is(err, io.ErrClosedPipe) {
				// ttrpc closed the session; rescan from here.
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

// serialConn is one host session on a serial port, as a net.Conn for ttrpc.
type serialConn struct {
	r   *io.PipeReader
	w   *sessionWriter
	gen uint64
}

func (c *serialConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *serialConn) Write(p []byte) (int, error) { return c.w.writeGen(c.gen, p) }
func (c *serialConn) Close() error                { return c.r.CloseWithError(io.ErrClosedPipe) }
func (c *serialConn) LocalAddr() net.Addr         { return serialAddr{} }
func (c *serialConn) RemoteAddr() net.Addr        { return serialAddr{} }

// Deadlines are not supported on serial sessions (ttrpc does not use them).
func (c *serialConn) SetDeadline(time.Time) error      { return errors.ErrUnsupported }
func (c *serialConn) SetReadDeadline(time.Time) error  { return errors.ErrUnsupported }
func (c *serialConn) SetWriteDeadline(time.Time) error { return errors.ErrUnsupported }

type serialAddr struct{}

func (serialAddr) Network() string { return "serial" }
func (serialAddr) String() string  { return "serial" }

// connListener hands serial sessions to ttrpc's Serve.
type connListener struct {
	ch        chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) error {
	select {
	case l.ch <- c:
		return nil
	case <-l.done:
		c.Close()
		return net.ErrClosed
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return serialAddr{} }
