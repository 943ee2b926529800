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
type guardConn struct {
	net.Conn
	onClose func()
	log     *slog.Logger

	hdr  [frameHeaderLen]byte
	hn   int // header bytes read
	hpos int // header bytes handed out
	body int // body bytes left in the current frame
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
	if g.hn < frameHeaderLen {
		for g.hn < frameHeaderLen {
			n, err := g.Conn.Read(g.hdr[g.hn:])
			g.hn += n
			if err != nil {
				if g.hn > 0 && errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				g.err = err
				return 0, err
			}
		}
		if err := checkFrameHeader(g.hdr[:]); err != nil {
			if g.log != nil {
				g.log.Warn("dropping connection", "remote", g.Conn.RemoteAddr(), "err", err)
			}
			g.err = err
			return 0, err
		}
		g.hpos = 0
		g.body = int(binary.BigEndian.Uint32(g.hdr[:4]))
	}
	if g.hpos < frameHeaderLen {
		n := copy(p, g.hdr[g.hpos:])
		g.hpos += n
		if g.hpos == frameHeaderLen && g.body == 0 {
			g.hn = 0
		}
		return n, nil
	}
	if len(p) > g.body {
		p = p[:g.body]
	}
	n, err := g.Conn.Read(p)
	g.body -= n
	if g.body == 0 {
		g.hn = 0
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		g.err = err
	}
	return n, err
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
