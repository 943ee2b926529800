package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pettyvm/petty/agent/wire"
)

// Mux shares one connection to the agent among any number of clients.
//
// A virtio-serial port is a single byte stream: a second host connection
// would end the first one's session (see SerialHandshake). A Mux owns the
// one upstream connection, already handshaken and authenticated, and serves
// downstream connections that each speak the agent's protocol as if they
// were connected to the agent itself: an auth line first (see
// Authenticate; checked against Token), then frames. It rewrites each
// downstream's stream ids to unique upstream ids, in increasing order as the
// agent requires, and routes the agent's frames back; frames travel whole.
//
// Isolation: every frame's length is checked against MaxFrameSize before its
// body is read. Frames for a downstream wait in a bounded queue of their own;
// a downstream that does not read (its queue is full) is dropped, and
// neither the upstream reader nor other downstreams ever wait for it.
//
// A downstream going away (closed, or dropped) must stop what it started,
// as closing a connection to the agent does; but the upstream stays open, so
// the Mux ends its streams explicitly, the way a client gives up on them:
// an Exec stream gets a kill message, then output credits until its exit
// status arrives, then the client's close; any other stream the client had
// not closed gets the client's close (ReadFile and WriteFile stop on it); a
// unary call runs to its end (its deadline travels in the request). The
// upstream id is forgotten once the agent ends the stream (a response frame,
// or a data frame closing the agent's side); frames for it that arrive later
// are dropped, as are a client's frames on a stream that ended.
//
// When the upstream connection fails, every downstream is closed and Serve
// returns. Upstream stream ids are never reused: after 2^31 streams the Mux
// ends itself.
//
// Set the exported fields before the first Serve or ServeConn call.
type Mux struct {
	// Token, if not empty, is the token each downstream's auth line must
	// carry; empty accepts any (the line is still required).
	Token string
	// Logger receives diagnostics. Nil means slog.Default().
	Logger *slog.Logger

	up       net.Conn
	maxQueue int // bytes queued per downstream before it is dropped

	wmu sync.Mutex // whole frames to up; request ids increasing on the wire

	mu        sync.Mutex
	routes    map[uint32]*muxRoute // by upstream stream id
	nextUp    uint32
	downs     map[*muxDown]struct{}
	listeners map[net.Listener]struct{}
	err       error         // set once the Mux ended
	done      chan struct{} // closed once the Mux ended
	ctl       [][]byte      // control frames for the upstream writer
	ctlWake   chan struct{}

	wg sync.WaitGroup // the Mux's own goroutines
}

// ErrMuxClosed is returned (wrapped) by Serve once the Mux has ended: after
// Close, or when the upstream connection failed.
var ErrMuxClosed = errors.New("agent: mux closed")

// Queue and control limits of a Mux.
const (
	// muxQueueBytes bounds the frames waiting for one downstream.
	muxQueueBytes = 8 << 20
	// muxQueueFrames bounds their number.
	muxQueueFrames = 4096
	// muxMaxControl bounds the control frames (credits, kills, closes) the
	// Mux has queued for an upstream that does not read them.
	muxMaxControl = 1 << 16
)

// muxRoute is one upstream stream.
type muxRoute struct {
	down      *muxDown // nil once the downstream went away
	downID    uint32
	stream    bool // a streaming call (else unary)
	exec      bool // an Exec stream
	sentClose bool // the client side of the stream is closed
	exited    bool // an Exec stream's exit status went by
}

// muxDown is one downstream connection.
type muxDown struct {
	conn    net.Conn
	streams map[uint32]uint32 // downstream id -> upstream id; guarded by Mux.mu
	lastID  uint32            // highest request id; reader only
	q       chan []byte
	qBytes  int  // guarded by Mux.mu
	gone    bool // dropped or closed; guarded by Mux.mu
	quit    chan struct{}
}

// NewMux returns a Mux over upstream, a connection to the agent that has
// been handshaken (serial ports) and authenticated, and starts reading it.
// The Mux owns upstream: Close closes it.
func NewMux(upstream net.Conn) *Mux {
	m := &Mux{
		up:        upstream,
		maxQueue:  muxQueueBytes,
		routes:    map[uint32]*muxRoute{},
		nextUp:    1,
		downs:     map[*muxDown]struct{}{},
		listeners: map[net.Listener]struct{}{},
		done:      make(chan struct{}),
		ctlWake:   make(chan struct{}, 1),
	}
	m.wg.Go(m.readUpstream)
	m.wg.Go(m.writeControl)
	return m
}

func (m *Mux) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// Done is closed once the Mux has ended (Close, or the upstream failed).
func (m *Mux) Done() <-chan struct{} { return m.done }

// Err returns why the Mux ended (wrapping ErrMuxClosed), or nil while it
// runs.
func (m *Mux) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Close ends the Mux: it closes the upstream connection, every listener
// passed to Serve and every downstream connection, and waits for the Mux's
// goroutines. Calls in progress fail. Close is idempotent.
func (m *Mux) Close() error {
	m.fail(ErrMuxClosed)
	m.wg.Wait()
	return nil
}

// fail ends the Mux with err (the first error wins).
func (m *Mux) fail(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	if !errors.Is(err, ErrMuxClosed) {
		err = fmt.Errorf("%w: %w", ErrMuxClosed, err)
	}
	m.err = err
	close(m.done)
	downs, ls := m.downs, m.listeners
	m.downs, m.listeners = map[*muxDown]struct{}{}, map[net.Listener]struct{}{}
	for d := range downs {
		d.gone = true
		close(d.quit)
	}
	m.mu.Unlock()
	m.up.Close()
	for l := range ls {
		l.Close()
	}
	for d := range downs {
		d.conn.Close()
	}
}

// Serve accepts connections on l and serves each (see ServeConn) until the
// Mux ends or l fails. It always returns a non-nil error, after closing l
// and once the connections it accepted are done; after Close or an
// upstream failure the error wraps ErrMuxClosed.
func (m *Mux) Serve(l net.Listener) error {
	m.mu.Lock()
	if m.err != nil {
		err := m.err
		m.mu.Unlock()
		l.Close()
		return err
	}
	m.listeners[l] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.listeners, l)
		m.mu.Unlock()
		l.Close()
	}()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if merr := m.Err(); merr != nil {
				return merr
			}
			return err
		}
		conns.Go(func() { m.ServeConn(c) })
	}
}

// ServeConn serves one downstream connection, which it owns, until it
// closes, is dropped, or the Mux ends; then it closes c and returns. The
// connection must first authenticate (see Authenticate), within 10 seconds.
func (m *Mux) ServeConn(c net.Conn) {
	d := &muxDown{
		conn:    c,
		streams: map[uint32]uint32{},
		q:       make(chan []byte, muxQueueFrames),
		quit:    make(chan struct{}),
	}
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		c.Close()
		return
	}
	m.downs[d] = struct{}{}
	m.mu.Unlock()
	defer m.drop(d, nil)

	c.SetReadDeadline(time.Now().Add(wire.AuthTimeout))
	if err := wire.CheckAuth(c, c, m.Token); err != nil {
		m.logger().Warn("mux: refusing connection", "err", err)
		return
	}
	c.SetReadDeadline(time.Time{})

	var writer sync.WaitGroup
	writer.Go(func() { m.writeDown(d) })
	defer writer.Wait()
	err := m.readDown(d)
	m.drop(d, err)
}

// drop ends downstream d (once): its streams are orphaned (see Mux) and its
// connection closed.
func (m *Mux) drop(d *muxDown, why error) {
	m.mu.Lock()
	if d.gone {
		m.mu.Unlock()
		return
	}
	d.gone = true
	close(d.quit)
	delete(m.downs, d)
	for _, upID := range d.streams {
		if r := m.routes[upID]; r != nil {
			r.down = nil
			m.orphanLocked(upID, r)
		}
	}
	d.streams = nil
	m.mu.Unlock()
	if why != nil && !errors.Is(why, io.EOF) && !errors.Is(why, net.ErrClosed) {
		m.logger().Debug("mux: dropping connection", "err", why)
	}
	d.conn.Close()
}

// readDown forwards d's frames upstream until d fails.
func (m *Mux) readDown(d *muxDown) error {
	var hdr [wire.HeaderLen]byte
	for {
		if _, err := io.ReadFull(d.conn, hdr[:]); err != nil {
			return err
		}
		if err := wire.CheckHeader(hdr[:]); err != nil {
			return err
		}
		f := make([]byte, wire.HeaderLen+int(binary.BigEndian.Uint32(hdr[:4])))
		copy(f, hdr[:])
		if _, err := io.ReadFull(d.conn, f[wire.HeaderLen:]); err != nil {
			return err
		}
		if err := m.forwardUp(d, f); err != nil {
			return err
		}
	}
}

// errMuxProtocol is a downstream breaking the protocol.
var errMuxProtocol = errors.New("agent: mux: protocol violation")

// forwardUp rewrites f's stream id and writes it upstream.
func (m *Mux) forwardUp(d *muxDown, f []byte) error {
	id := binary.BigEndian.Uint32(f[4:8])
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.mu.Lock()
	if d.gone {
		m.mu.Unlock()
		return net.ErrClosed
	}
	var upID uint32
	switch f[8] {
	case wire.TypeRequest:
		if id%2 != 1 || id <= d.lastID {
			m.mu.Unlock()
			return fmt.Errorf("%w: request stream id %d after %d", errMuxProtocol, id, d.lastID)
		}
		if m.nextUp > 1<<32-3 {
			m.mu.Unlock()
			m.fail(errors.New("upstream stream ids exhausted"))
			return net.ErrClosed
		}
		d.lastID = id
		upID = m.nextUp
		m.nextUp += 2
		r := &muxRoute{down: d, downID: id, stream: f[9]&wire.FlagRemoteOpen != 0}
		if r.stream {
			r.exec = requestMethod(f[wire.HeaderLen:]) == wire.MethodExec
		}
		m.routes[upID] = r
		d.streams[id] = upID
	case wire.TypeData:
		var ok bool
		if upID, ok = d.streams[id]; !ok {
			m.mu.Unlock()
			return nil // a stream that ended: dropped, as the agent would
		}
		if f[9]&wire.FlagRemoteClose != 0 {
			m.routes[upID].sentClose = true
		}
	default:
		m.mu.Unlock()
		return fmt.Errorf("%w: frame type %d from a client", errMuxProtocol, f[8])
	}
	m.mu.Unlock()
	binary.BigEndian.PutUint32(f[4:8], upID)
	if _, err := m.up.Write(f); err != nil {
		m.fail(fmt.Errorf("writing upstream: %w", err))
		return net.ErrClosed
	}
	return nil
}

// writeDown writes d's queued frames to it.
func (m *Mux) writeDown(d *muxDown) {
	for {
		select {
		case f := <-d.q:
			_, err := d.conn.Write(f)
			m.mu.Lock()
			d.qBytes -= len(f)
			m.mu.Unlock()
			if err != nil {
				m.drop(d, err)
				return
			}
		case <-d.quit:
			return
		}
	}
}

// readUpstream routes the agent's frames until the upstream fails.
func (m *Mux) readUpstream() {
	var hdr [wire.HeaderLen]byte
	for {
		if _, err := io.ReadFull(m.up, hdr[:]); err != nil {
			m.fail(fmt.Errorf("reading upstream: %w", err))
			return
		}
		if err := wire.CheckHeader(hdr[:]); err != nil {
			m.fail(fmt.Errorf("from upstream: %w", err))
			return
		}
		f := make([]byte, wire.HeaderLen+int(binary.BigEndian.Uint32(hdr[:4])))
		copy(f, hdr[:])
		if _, err := io.ReadFull(m.up, f[wire.HeaderLen:]); err != nil {
			m.fail(fmt.Errorf("reading upstream: %w", err))
			return
		}
		m.route(f)
	}
}

// route hands one frame from the agent to its downstream, or to the
// orphan handling of its stream.
func (m *Mux) route(f []byte) {
	upID := binary.BigEndian.Uint32(f[4:8])
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.routes[upID]
	if r == nil {
		return // a stream nobody waits for (or a request: never sent by the agent)
	}
	switch f[8] {
	case wire.TypeResponse:
		delete(m.routes, upID)
		if r.down != nil {
			delete(r.down.streams, r.downID)
		}
	case wire.TypeData:
		if r.exec && isExecExit(f[wire.HeaderLen:]) {
			r.exited = true
		}
		if f[9]&wire.FlagRemoteClose != 0 {
			// The agent ended the stream (a streaming call's clean end).
			delete(m.routes, upID)
			if r.down != nil {
				delete(r.down.streams, r.downID)
			}
		}
	default:
		return
	}
	d := r.down
	if d == nil {
		m.orphanFrameLocked(upID, r, f)
		return
	}
	binary.BigEndian.PutUint32(f[4:8], r.downID)
	if d.qBytes+len(f) > m.maxQueue {
		m.dropLockedAsync(d)
		if f[8] != wire.TypeResponse {
			m.orphanFrameLocked(upID, r, f)
		}
		return
	}
	select {
	case d.q <- f:
		d.qBytes += len(f)
	default:
		m.dropLockedAsync(d)
		if f[8] != wire.TypeResponse {
			m.orphanFrameLocked(upID, r, f)
		}
	}
}

// dropLockedAsync drops d from the upstream reader, which must not wait:
// its streams are orphaned now, its connection closed in the background.
func (m *Mux) dropLockedAsync(d *muxDown) {
	if d.gone {
		return
	}
	m.logger().Warn("mux: dropping a connection that does not read")
	d.gone = true
	close(d.quit)
	delete(m.downs, d)
	for _, upID := range d.streams {
		if r := m.routes[upID]; r != nil {
			r.down = nil
			m.orphanLocked(upID, r)
		}
	}
	d.streams = nil
	m.wg.Go(func() { d.conn.Close() })
}

// sendControlLocked queues a frame for the upstream writer.
func (m *Mux) sendControlLocked(f []byte) {
	if m.err != nil {
		return
	}
	if len(m.ctl) >= muxMaxControl {
		m.wg.Go(func() { m.fail(errors.New("upstream does not read")) })
		return
	}
	m.ctl = append(m.ctl, f)
	select {
	case m.ctlWake <- struct{}{}:
	default:
	}
}

// writeControl writes the queued control frames upstream.
func (m *Mux) writeControl() {
	for {
		select {
		case <-m.ctlWake:
		case <-m.done:
			return
		}
		for {
			m.mu.Lock()
			if len(m.ctl) == 0 || m.err != nil {
				m.ctl = nil
				m.mu.Unlock()
				break
			}
			f := m.ctl[0]
			m.ctl = m.ctl[1:]
			m.mu.Unlock()
			m.wmu.Lock()
			_, err := m.up.Write(f)
			m.wmu.Unlock()
			if err != nil {
				m.fail(fmt.Errorf("writing upstream: %w", err))
				return
			}
		}
	}
}
