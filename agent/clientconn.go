package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/wire"
)

// wireClient is the host side of the wire protocol (package wire), without
// a receiver goroutine of its own: the callers read the connection
// themselves. Whoever waits for a frame and finds no reader becomes the
// reader (leader/follower): it reads frames, hands the ones for other
// streams to their inboxes, and returns when it reads its own, so an
// uncontended unary call never changes goroutine. When it leaves, a
// waiting caller takes over. A caller's ctx ending interrupts its read with
// a read deadline; a partly read frame is kept for the next reader.
// Connections without deadlines get a reader goroutine instead.
//
// Nothing the agent sends is trusted (see Client for the limits): a header
// is checked before its body is allocated, a stream's inbox is bounded and
// overflowing it fails that stream without ever blocking the reader, and a
// frame for a stream the host never opened fails the connection.
type wireClient struct {
	nc  net.Conn
	lim limits

	wlock chan struct{} // held (one token) while writing a whole frame
	wbuf  []byte        // guarded by wlock

	mu      sync.Mutex
	streams map[uint32]*wireStream
	nextID  uint32
	reading bool          // a goroutine holds the reader role
	waiters int           // callers waiting on handoff
	handoff chan struct{} // closed when the reader role is released, if waiters
	err     error         // terminal: the connection is closed or broken
	bg      bool          // a background goroutine reads (no deadlines)
	helper  *stalledWrite // the write whose helper holds the reader role

	// Streams given up before their last frame arrived: the agent may
	// still write to them (see writeConn). At most maxUnended ids are
	// kept; beyond that, unendedMany stays set for the connection's life.
	unended     map[uint32]struct{}
	unendedMany bool
	mayWrite    atomic.Bool  // len(unended) > 0 || unendedMany
	nstreams    atomic.Int32 // registered streams

	// Reader state, owned by the reader role.
	br   *bufio.Reader
	rhdr [wire.HeaderLen]byte
	rhn  int    // header bytes read
	rbuf []byte // body of the frame being read (nil: reading the header)
	rbn  int    // body bytes read
}

// wireFrame is one frame received on a stream.
type wireFrame struct {
	typ, flags byte
	payload    []byte
}

// wireStream is one stream's receiving side.
type wireStream struct {
	id     uint32
	inbox  chan wireFrame
	queued atomic.Int64  // payload bytes in inbox
	done   chan struct{} // closed (with err set) when the stream is removed
	err    error
}

// take returns a frame from the inbox without blocking.
func (s *wireStream) take() (wireFrame, bool) {
	select {
	case f := <-s.inbox:
		s.queued.Add(-int64(len(f.payload)))
		return f, true
	default:
		return wireFrame{}, false
	}
}

func newWireClient(nc net.Conn, lim limits) *wireClient {
	c := &wireClient{
		nc:      nc,
		lim:     lim,
		wlock:   make(chan struct{}, 1),
		streams: map[uint32]*wireStream{},
		unended: map[uint32]struct{}{},
		nextID:  1,
		handoff: make(chan struct{}),
		br:      bufio.NewReaderSize(nc, 16<<10),
	}
	if nc.SetReadDeadline(time.Time{}) != nil {
		// No deadlines to interrupt a reader with: read in the background.
		c.reading, c.bg = true, true
		go func() {
			for {
				if _, _, err := c.readUntil(nil); err != nil {
					return
				}
			}
		}()
	}
	return c
}

// close ends the connection; calls in progress fail with err.
func (c *wireClient) close(err error) error {
	c.fail(err)
	return c.nc.Close()
}

// fail records a terminal error (the first one wins) and ends all streams.
func (c *wireClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for id, s := range c.streams {
		delete(c.streams, id)
		c.nstreams.Add(-1)
		s.err = err
		close(s.done)
	}
}

// failConn fails and closes the connection because of err, a protocol
// violation or a broken transport.
func (c *wireClient) failConn(err error) error {
	c.mu.Lock()
	cerr := c.err
	c.mu.Unlock()
	if cerr != nil {
		return cerr
	}
	cerr = fmt.Errorf("%w: %w", ErrClosed, err)
	c.fail(cerr)
	c.nc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// open starts a stream by sending a request frame and returns it,
// registered to receive frames; inbox bounds the frames it buffers.
func (c *wireClient) open(ctx context.Context, method string, flags byte, in proto.Message, inbox int) (*wireStream, error) {
	if err := c.lock(ctx); err != nil {
		return nil, err
	}
	defer c.unlock()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	s := &wireStream{id: c.nextID, inbox: make(chan wireFrame, inbox), done: make(chan struct{})}
	c.nextID += 2
	c.streams[s.id] = s
	c.nstreams.Add(1)
	c.mu.Unlock()
	var timeout int64
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl).Nanoseconds(), 1)
	}
	b, err := wire.AppendRequestFrame(c.wbuf[:0], s.id, flags, wire.ServiceName, method, in, timeout)
	if err == nil {
		err = c.writeLocked(ctx, b)
	}
	if err != nil {
		c.remove(s, err)
		return nil, err
	}
	return s, nil
}

// remove unregisters s; frames for it are dropped from now on.
func (c *wireClient) remove(s *wireStream, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(s, err)
}

func (c *wireClient) removeLocked(s *wireStream, err error) {
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
		c.nstreams.Add(-1)
		s.err = err
		close(s.done)
	}
}

// maxUnended bounds the ids of streams given up before their end that a
// connection remembers.
const maxUnended = 256

// abandon unregisters s, whose last frame has not arrived: the agent may
// still write to it.
func (c *wireClient) abandon(s *wireStream, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(s, err)
	if c.err != nil {
		return
	}
	if len(c.unended) < maxUnended {
		c.unended[s.id] = struct{}{}
	} else {
		c.unendedMany = true
	}
	c.mayWrite.Store(true)
}

// ended notes a dropped frame that ended stream id, given up earlier.
func (c *wireClient) ended(id uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.unended, id)
	c.mayWrite.Store(len(c.unended) > 0 || c.unendedMany)
}

// registered reports how many streams are registered (tests).
func (c *wireClient) registered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// lock takes the write lock, or gives up when ctx ends.
func (c *wireClient) lock(ctx context.Context) error {
	select {
	case c.wlock <- struct{}{}:
		return nil
	default:
	}
	select {
	case c.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *wireClient) unlock() { <-c.wlock }

// send writes one data frame on stream id; ctx bounds the wait for the
// connection.
func (c *wireClient) send(ctx context.Context, id uint32, flags byte, m proto.Message) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	defer c.unlock()
	b, err := wire.AppendFrame(c.wbuf[:0], id, wire.TypeData, flags, m)
	if err != nil {
		return err
	}
	return c.writeLocked(ctx, b)
}

// writeLocked writes the frame b under the write lock. ctx ending
// interrupts a write still blocked abortWait later (an agent that stopped
// reading): with nothing written it returns ctx.Err(); a frame cut in the
// middle breaks the connection.
func (c *wireClient) writeLocked(ctx context.Context, b []byte) error {
	if cap(b) <= 64<<10 {
		c.wbuf = b[:0]
	}
	c.mu.Lock()
	cerr := c.err
	c.mu.Unlock()
	if cerr != nil {
		return cerr
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var stop func() bool
	var fired chan struct{}
	if ctx.Done() != nil && !c.bg {
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			c.nc.SetWriteDeadline(time.Now().Add(abortWait))
			close(fired)
		})
	}
	n, err := c.writeConn(b)
	if stop != nil && !stop() {
		<-fired
		c.nc.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return nil
	}
	if n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
		return ctx.Err() // nothing written: the connection is intact
	}
	return c.failConn(fmt.Errorf("write: %w", err))
}

// writeStall is how long a write may block before a helper starts reading
// on the caller's behalf.
const writeStall = time.Millisecond

// stalledWrite is a write in progress that a helper reader may serve.
type stalledWrite struct{ done bool } // done: guarded by wireClient.mu

// writeConn writes b. The callers only read while they wait for a frame,
// so while every caller is writing nobody would read: if the agent is
// itself blocked writing to us (full socket buffers both ways, a late reply
// to a call that gave up), neither side would move. A write that blocks for
// writeStall therefore starts a helper that holds the reader role,
// delivering frames to their streams, until the write is done. Alone on
// the connection (one stream, none given up before its end) the writer
// needs no helper: the agent only writes what that stream asked for, and
// its reader never waits for us meanwhile. (An agent that does, writing
// without reading, blocks such a write until its ctx ends.)
func (c *wireClient) writeConn(b []byte) (int, error) {
	if c.bg || (c.nstreams.Load() <= 1 && !c.mayWrite.Load()) {
		return c.nc.Write(b)
	}
	w := &stalledWrite{}
	t := time.AfterFunc(writeStall, func() { c.helpRead(w) })
	n, err := c.nc.Write(b)
	if !t.Stop() {
		c.mu.Lock()
		w.done = true
		if c.helper == w {
			c.nc.SetReadDeadline(time.Now()) // interrupt the helper
		}
		c.mu.Unlock()
	}
	return n, err
}

// helpRead reads for a stalled write w until it is done.
func (c *wireClient) helpRead(w *stalledWrite) {
	c.mu.Lock()
	if w.done || c.reading || c.err != nil {
		c.mu.Unlock()
		return
	}
	c.reading, c.helper = true, w
	c.mu.Unlock()
	for {
		_, _, err := c.readUntil(nil)
		c.mu.Lock()
		if w.done || (err != nil && !errors.Is(err, errInterrupted)) {
			c.nc.SetReadDeadline(time.Time{})
			c.helper = nil
			c.releaseLocked()
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// releaseLocked gives up the reader role and wakes the waiters.
func (c *wireClient) releaseLocked() {
	c.reading = false
	if c.waiters > 0 {
		close(c.handoff)
		c.handoff = make(chan struct{})
		c.waiters = 0
	}
}

// recv returns the next frame for s, reading the connection itself when no
// one else is.
func (c *wireClient) recv(ctx context.Context, s *wireStream) (wireFrame, error) {
	for {
		if f, ok := s.take(); ok {
			return f, nil
		}
		select {
		case <-s.done:
			return wireFrame{}, s.err
		default:
		}
		c.mu.Lock()
		if !c.reading {
			c.reading = true
			c.mu.Unlock()
			f, ok, err := c.lead(ctx, s)
			c.mu.Lock()
			c.releaseLocked()
			c.mu.Unlock()
			if ok || err != nil {
				return f, err
			}
			continue
		}
		h := c.handoff
		c.waiters++
		c.mu.Unlock()
		select {
		case f := <-s.inbox:
			s.queued.Add(-int64(len(f.payload)))
			return f, nil
		case <-s.done:
		case <-h:
		case <-ctx.Done():
			return wireFrame{}, ctx.Err()
		}
	}
}

// lead reads frames as the reader until one for s arrives (ok), s ends, ctx
// ends or the connection fails.
func (c *wireClient) lead(ctx context.Context, s *wireStream) (wireFrame, bool, error) {
	// A reader before us may have delivered it just before leaving.
	if f, ok := s.take(); ok {
		return f, true, nil
	}
	select {
	case <-s.done:
		return wireFrame{}, false, s.err
	default:
	}
	if ctx.Err() != nil {
		return wireFrame{}, false, ctx.Err()
	}
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.nc.SetReadDeadline(time.Now())
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
				c.nc.SetReadDeadline(time.Time{})
			}
		}()
	}
	for {
		f, ok, err := c.readUntil(s)
		if ok || err == nil {
			return f, ok, err
		}
		if errors.Is(err, errInterrupted) {
			if ctx.Err() != nil {
				return wireFrame{}, false, ctx.Err()
			}
			continue // a late deadline from an earlier reader's ctx
		}
		return wireFrame{}, false, err
	}
}

// errInterrupted is a read interrupted by a deadline: not terminal.
var errInterrupted = errors.New("agent: read interrupted")

// readUntil reads one frame and delivers it: a frame for s is returned
// (ok), others go to their streams' inboxes. A nil error with !ok means
// another stream's frame was delivered or dropped, or s ended.
func (c *wireClient) readUntil(s *wireStream) (wireFrame, bool, error) {
	for {
		id, f, err := c.readFrame()
		if err != nil {
			return wireFrame{}, false, err
		}
		c.mu.Lock()
		t := c.streams[id]
		opened := id%2 == 1 && id < c.nextID
		c.mu.Unlock()
		switch {
		case f.typ == wire.TypeRequest:
			return wireFrame{}, false, c.failConn(fmt.Errorf("%w: a request frame (stream %d) from the agent", ErrProtocol, id))
		case t == nil && !opened:
			return wireFrame{}, false, c.failConn(fmt.Errorf("%w: a frame for stream %d, which the host never opened", ErrProtocol, id))
		case t == nil:
			// A stream we gave up on: drop the frame, noting its end.
			if f.typ == wire.TypeResponse || f.flags&wire.FlagRemoteClose != 0 {
				c.ended(id)
			}
		case t == s:
			return f, true, nil
		default:
			c.deliver(t, f)
		}
		if s == nil {
			return wireFrame{}, false, nil
		}
		select {
		case <-s.done:
			return wireFrame{}, false, s.err
		default:
		}
	}
}

// deliver queues f for t without ever blocking: the reader serves every
// stream. A stream whose inbox is full, or would hold more than the host's
// per-stream byte limit, has received more than its credits allow (its
// consumer cannot be behind by more than the window): that stream fails
// with ErrProtocol, the others go on.
func (c *wireClient) deliver(t *wireStream, f wireFrame) {
	n := int64(len(f.payload))
	if q := t.queued.Add(n); q > n && q > c.lim.streamBuffer {
		t.queued.Add(-n)
		c.remove(t, fmt.Errorf("%w: stream %d: more than %d bytes unread", ErrProtocol, t.id, c.lim.streamBuffer))
		return
	}
	select {
	case t.inbox <- f:
	default:
		t.queued.Add(-n)
		c.remove(t, fmt.Errorf("%w: stream %d: more than %d frames unread (credits overrun)", ErrProtocol, t.id, cap(t.inbox)))
	}
}

// readFrame reads the next frame, resuming a partly read one. A read
// deadline yields errInterrupted; other errors are terminal. The header is
// checked against the host's frame limit before the body is allocated.
func (c *wireClient) readFrame() (uint32, wireFrame, error) {
	for c.rbuf == nil {
		n, err := c.br.Read(c.rhdr[c.rhn:])
		c.rhn += n
		if c.rhn == wire.HeaderLen {
			h := wire.DecodeHeader(c.rhdr[:])
			if err := h.Check(c.lim.maxFrame); err != nil {
				return 0, wireFrame{}, c.failConn(fmt.Errorf("%w: %w", ErrProtocol, err))
			}
			c.rbuf, c.rbn = make([]byte, h.Length), 0
			break
		}
		if err != nil {
			return 0, wireFrame{}, c.readErr(err)
		}
	}
	for c.rbn < len(c.rbuf) {
		n, err := c.br.Read(c.rbuf[c.rbn:])
		c.rbn += n
		if err != nil && c.rbn < len(c.rbuf) {
			return 0, wireFrame{}, c.readErr(err)
		}
	}
	h := wire.DecodeHeader(c.rhdr[:])
	f := wireFrame{typ: h.Type, flags: h.Flags, payload: c.rbuf}
	c.rbuf, c.rhn = nil, 0
	return h.StreamID, f, nil
}

// readErr classifies a read error; terminal ones fail the connection.
func (c *wireClient) readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errInterrupted
	}
	return c.failConn(err)
}

// call makes a unary call: it sends in and decodes the response into resp.
// However it ends, the call is deregistered when it returns: a late reply
// is dropped.
func (c *wireClient) call(ctx context.Context, method string, in, resp proto.Message) error {
	s, err := c.open(ctx, method, 0, in, 1)
	if err != nil {
		return err
	}
	f, err := c.recv(ctx, s)
	if err != nil {
		c.abandon(s, ErrClosed)
		return err
	}
	c.remove(s, ErrClosed)
	if f.typ != wire.TypeResponse {
		return fmt.Errorf("%w: stream %d: frame type %d in reply to a call", ErrProtocol, s.id, f.typ)
	}
	return decodeResponse(f.payload, resp)
}

// decodeResponse decodes a response body into m and returns its status.
func decodeResponse(b []byte, m proto.Message) error {
	var r wire.Response
	if err := r.Unmarshal(b); err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if err := statusError(r.Status); err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	if err := proto.Unmarshal(r.Payload, m); err != nil {
		return fmt.Errorf("%w: response: %w", ErrProtocol, err)
	}
	return nil
}

// clientStream is a bidirectional stream (Exec, ReadFile, WriteFile) with
// In messages going to the agent and Out messages coming back. It is
// deregistered when ctx ends or release is called.
type clientStream[In proto.Message, Out any, POut interface {
	*Out
	proto.Message
}] struct {
	c            *wireClient
	s            *wireStream
	ctx          context.Context
	stop         func() bool
	localClosed  bool
	remoteClosed bool
}

// openStream starts method as a stream. The stream ends with ctx.
func openStream[In proto.Message, Out any, POut interface {
	*Out
	proto.Message
}](ctx context.Context, c *wireClient, method string) (*clientStream[In, Out, POut], error) {
	s, err := c.open(ctx, method, wire.FlagRemoteOpen, nil, wire.StreamInbox)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.remove(s, ctx.Err()) })
	return &clientStream[In, Out, POut]{c: c, s: s, ctx: ctx, stop: stop}, nil
}

// Send sends one message.
func (cs *clientStream[In, Out, POut]) Send(m In) error {
	if cs.localClosed {
		return fmt.Errorf("%w: send after close", net.ErrClosed)
	}
	return cs.c.send(cs.ctx, cs.s.id, 0, m)
}

// CloseSend tells the agent that no more messages follow. Before the
// agent's final message, it abandons the call (the agent stops the
// command or transfer).
func (cs *clientStream[In, Out, POut]) CloseSend() error {
	return cs.closeSend(cs.ctx)
}

func (cs *clientStream[In, Out, POut]) closeSend(ctx context.Context) error {
	if cs.localClosed {
		return nil
	}
	cs.localClosed = true
	return cs.c.send(ctx, cs.s.id, wire.FlagRemoteClose|wire.FlagNoData, nil)
}

// abortWait bounds how long a call that failed or whose ctx ended spends
// telling the agent to stop (a frame or two, unless the agent stopped
// reading).
const abortWait = 250 * time.Millisecond

// release ends the call on the host: unless the agent already ended the
// stream it closes the host's side, which tells the agent to stop, and,
// for a call that completed (drain), reads until the agent's end of the
// stream; both within abortWait. Then the stream is deregistered and late
// frames dropped.
func (cs *clientStream[In, Out, POut]) release(drain bool) {
	cs.stop()
	if cs.remoteClosed {
		cs.c.remove(cs.s, ErrClosed)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cs.ctx), abortWait)
	defer cancel()
	if !cs.localClosed {
		cs.closeSend(ctx)
	}
	cs.localClosed = true
	if drain && cs.ctx.Err() == nil {
		cs.ctx = ctx
		for !cs.remoteClosed {
			if _, err := cs.Recv(); err != nil && !cs.remoteClosed {
				break
			}
		}
	}
	if cs.remoteClosed {
		cs.c.remove(cs.s, ErrClosed)
	} else {
		cs.c.abandon(cs.s, ErrClosed)
	}
}

// Recv returns the next message; io.EOF when the agent ended the stream
// cleanly, a *RemoteError when it ended it with an error status.
func (cs *clientStream[In, Out, POut]) Recv() (POut, error) {
	if cs.remoteClosed {
		return nil, io.EOF
	}
	f, err := cs.c.recv(cs.ctx, cs.s)
	if err != nil {
		if cs.ctx.Err() != nil {
			return nil, cs.ctx.Err()
		}
		return nil, err
	}
	switch f.typ {
	case wire.TypeResponse:
		cs.remoteClosed = true
		if err := decodeResponse(f.payload, nil); err != nil {
			return nil, err
		}
		return nil, io.EOF
	case wire.TypeData:
		if f.flags&wire.FlagRemoteClose != 0 {
			cs.remoteClosed = true
			if f.flags&wire.FlagNoData != 0 {
				return nil, io.EOF
			}
		}
		m := POut(new(Out))
		if err := proto.Unmarshal(f.payload, m); err != nil {
			return nil, fmt.Errorf("%w: stream %d: %w", ErrProtocol, cs.s.id, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%w: stream %d: frame type %d", ErrProtocol, cs.s.id, f.typ)
}
