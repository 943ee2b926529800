package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// ttrpc framing: a 10-byte header (length uint32, stream id uint32, type
// byte, flags byte) followed by length bytes.
const (
	frameHeaderLen = 10
	// MaxFrameSize is the largest frame payload either side accepts. It is
	// ttrpc's own limit; a peer announcing a larger frame is dropped.
	MaxFrameSize = 4 << 20
)

// errMalformedFrame wraps io.ErrUnexpectedEOF so that ttrpc treats it as the
// peer going away and closes the connection instead of lingering.
var errMalformedFrame = fmt.Errorf("agent: malformed frame: %w", io.ErrUnexpectedEOF)

// checkFrameHeader validates a ttrpc frame header.
func checkFrameHeader(h []byte) error {
	if n := binary.BigEndian.Uint32(h[:4]); n > MaxFrameSize {
		return fmt.Errorf("%w: length %d exceeds %d", errMalformedFrame, n, MaxFrameSize)
	}
	if t := h[8]; t < 1 || t > 3 {
		return fmt.Errorf("%w: unknown message type %d", errMalformedFrame, t)
	}
	return nil
}

// guardConn validates every frame header before ttrpc sees it. ttrpc would
// otherwise try to discard an oversized frame byte by byte (up to 4 GiB) and
// keep a connection open after some receive errors.
//
// It reads as much as the caller asks for (ttrpc reads through a 4 KiB
// bufio.Reader), so a small frame costs one read system call, and walks the
// headers in what it read. A header split across reads is held back until
// it is complete and valid; bytes after an invalid header are never handed
// out.
type guardConn struct {
	net.Conn
	onClose func()
	log     *slog.Logger

	hdr  [frameHeaderLen]byte // a header held back
	hn   int                  // header bytes held back
	hpos int                  // bytes of a complete held-back header handed out
	body int                  // body bytes left in the current frame
	err  error

	closeOnce sync.Once
}

func (g *guardConn) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if g.hn > 0 {
			return g.readHeldHeader(p)
		}
		n, err := g.Conn.Read(p)
		n, ok := g.scan(p[:n])
		if !ok {
			if n > 0 {
				return n, nil // the frames before the bad header; g.err next
			}
			return 0, g.err
		}
		if err != nil {
			if errors.Is(err, io.EOF) && (g.hn > 0 || g.body > 0) {
				err = io.ErrUnexpectedEOF
			}
			g.err = err
		}
		if n > 0 || err != nil {
			return n, err
		}
		// All we read was the start of a header, now held back.
	}
}

// scan walks the frame headers in b, which was just read, and returns how
// many of its bytes may be handed out: all but a trailing partial header
// (copied to g.hdr), or those before an invalid header (ok false, g.err set).
func (g *guardConn) scan(b []byte) (n int, ok bool) {
	i := 0
	for i < len(b) {
		if g.body > 0 {
			k := min(g.body, len(b)-i)
			g.body -= k
			i += k
			continue
		}
		if len(b)-i < frameHeaderLen {
			g.hn = copy(g.hdr[:], b[i:])
			return i, true
		}
		if !g.checkHeader(b[i : i+frameHeaderLen]) {
			return i, false
		}
		g.body = int(binary.BigEndian.Uint32(b[i : i+4]))
		i += frameHeaderLen
	}
	return i, true
}

// checkHeader validates h, and on failure logs it and sets g.err.
func (g *guardConn) checkHeader(h []byte) bool {
	err := checkFrameHeader(h)
	if err == nil {
		return true
	}
	if g.log != nil {
		g.log.Warn("dropping connection", "remote", g.Conn.RemoteAddr(), "err", err)
	}
	g.err = err
	return false
}

// readHeldHeader completes the held-back header, validates it and hands it
// out; the body then goes through Read's fast path.
func (g *guardConn) readHeldHeader(p []byte) (int, error) {
	for g.hn < frameHeaderLen {
		n, err := g.Conn.Read(g.hdr[g.hn:])
		g.hn += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			g.err = err
			return 0, err
		}
		if g.hn == frameHeaderLen && !g.checkHeader(g.hdr[:]) {
			return 0, g.err
		}
	}
	n := copy(p, g.hdr[g.hpos:])
	g.hpos += n
	if g.hpos == frameHeaderLen {
		g.body = int(binary.BigEndian.Uint32(g.hdr[:4]))
		g.hn, g.hpos = 0, 0
	}
	return n, nil
}

func (g *guardConn) Close() error {
	err := g.Conn.Close()
	g.closeOnce.Do(func() {
		if g.onClose != nil {
			g.onClose()
		}
	})
	return err
}
