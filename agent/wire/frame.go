package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ttrpc framing: a 10-byte header (length uint32, stream id uint32, type
// byte, flags byte) followed by length bytes.
const (
	frameHeaderLen = 10
	// Message types and flags of ttrpc's frame header.
	msgRequest      = 1
	msgResponse     = 2
	msgData         = 3
	flagRemoteClose = 0x1
	flagRemoteOpen  = 0x2
	flagNoData      = 0x4
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

	// answer, if set, answers a complete request frame synchronously
	// (fastpath.go), passing the response frame to reply, and reports
	// whether it did; false hands the request on to ttrpc. Frames it
	// answers are never handed out.
	answer  func(id uint32, flags byte, body []byte, reply func([]byte)) bool
	lastReq uint32 // highest request stream id seen (by Read's goroutine)

	// wmu serialises whole frames written by ttrpc (Write, possibly in
	// several calls per frame) and by the synchronous answers.
	wmu     sync.Mutex
	wheld   bool                 // Write holds wmu mid-frame (ttrpc's writer only)
	whdr    [frameHeaderLen]byte // a header being written
	whn     int
	wleft   int         // body bytes left in the frame being written
	wbroken atomic.Bool // a write failed mid-frame; the stream is corrupt
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
		if k := g.answerFrame(b[i:]); k > 0 {
			// Answered here: drop the frame from what ttrpc sees.
			b = b[:i+copy(b[i:], b[i+k:])]
			continue
		}
		g.body = int(binary.BigEndian.Uint32(b[i : i+4]))
		i += frameHeaderLen
	}
	return i, true
}

// answerFrame looks at the valid frame header starting b. For a request
// whose frame is complete in b and which the server answers synchronously,
// it writes the response and returns the frame's length; otherwise 0 (the
// frame goes on to ttrpc). It also enforces increasing request stream ids
// across both paths, as ttrpc would: the ones it answers never reach
// ttrpc's own check.
func (g *guardConn) answerFrame(b []byte) int {
	if b[8] != msgRequest || g.answer == nil {
		return 0
	}
	id := binary.BigEndian.Uint32(b[4:8])
	n := frameHeaderLen + int(binary.BigEndian.Uint32(b[:4]))
	if id%2 != 1 {
		return 0 // ttrpc rejects it
	}
	if id <= g.lastReq {
		if n > len(b) {
			return 0
		}
		g.writeFrame(statusFrame(id, status.New(codes.InvalidArgument, "StreamID cannot be re-used and must increment")))
		return n
	}
	g.lastReq = id
	if n > len(b) {
		return 0
	}
	if !g.answer(id, b[9], b[frameHeaderLen:n], g.writeFrame) {
		return 0
	}
	return n
}

// writeFrame writes one whole frame between ttrpc's frames.
func (g *guardConn) writeFrame(f []byte) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.wbroken.Load() {
		return
	}
	if n, err := g.Conn.Write(f); err != nil && n > 0 {
		g.wbroken.Store(true)
	}
}

// Write is ttrpc's: it writes a frame in one or more calls (through a 4 KiB
// bufio.Writer), so wmu is held from a frame's first byte to its last.
func (g *guardConn) Write(p []byte) (int, error) {
	if g.answer == nil {
		return g.Conn.Write(p)
	}
	if !g.wheld {
		g.wmu.Lock()
		g.wheld = true
	}
	if g.wbroken.Load() {
		g.wheld = false
		g.wmu.Unlock()
		return 0, net.ErrClosed
	}
	n, err := g.Conn.Write(p)
	g.trackWritten(p[:n])
	if err != nil && (g.whn > 0 || g.wleft > 0) {
		g.wbroken.Store(true)
	}
	if err != nil || (g.whn == 0 && g.wleft == 0) {
		g.wheld = false
		g.wmu.Unlock()
	}
	return n, err
}

// trackWritten follows frame boundaries in what ttrpc wrote.
func (g *guardConn) trackWritten(b []byte) {
	for len(b) > 0 {
		if g.wleft > 0 {
			k := min(g.wleft, len(b))
			g.wleft -= k
			b = b[k:]
			continue
		}
		k := copy(g.whdr[g.whn:], b)
		g.whn += k
		b = b[k:]
		if g.whn == frameHeaderLen {
			g.wleft = int(binary.BigEndian.Uint32(g.whdr[:4]))
			g.whn = 0
		}
	}
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
	if g.hpos == 0 && g.hdr[8] == msgRequest {
		// Split across reads: never answered here, but its id counts.
		if id := binary.BigEndian.Uint32(g.hdr[4:8]); id%2 == 1 && id > g.lastReq {
			g.lastReq = id
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
