package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// wireClient is the host side of ttrpc's wire protocol (frames, Request and
// Response protobufs, streams), without ttrpc's receiver goroutine: the
// callers read the connection themselves. Whoever waits for a frame and
// finds no reader becomes the reader (leader/follower): it reads frames,
// hands the ones for other streams to their inboxes, and returns when it
// reads its own, so an uncontended unary call never changes goroutine.
// When it leaves, a waiting caller takes over. A caller's ctx ending
// interrupts its read with a read deadline; a partly read frame is kept
// for the next reader. Connections without deadlines get a reader
// goroutine instead, as in ttrpc.
type wireClient struct {
	nc net.Conn

	wmu  sync.Mutex // whole frames, and stream ids increasing on the wire
	wbuf []byte

	mu      sync.Mutex
	streams map[uint32]*wireStream
	nextID  uint32
	reading bool          // a goroutine holds the reader role
	waiters int           // callers waiting on handoff
	handoff chan struct{} // closed when the reader role is released, if waiters
	err     error         // terminal: the connection is closed or broken
	bg      bool          // a background goroutine reads (no deadlines)
	helper  *stalledWrite // the write whose helper holds the reader role

	nstreams atomic.Int32 // registered streams

	// Reader state, owned by the reader role.
	br   *bufio.Reader
	rhdr [frameHeaderLen]byte
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
	id    uint32
	inbox chan wireFrame
	done  chan struct{} // closed (with err set) when the stream is removed
	err   error

	// abandoned: a unary call that gave up; it stays registered until its
	// reply arrives so that writers know the agent may still write to us
	// (writeConn). Guarded by wireClient.mu.
	abandoned bool
}

// streamInbox is how many frames a stream buffers (ttrpc's own size); the
// credit windows keep the agent well below it.
const streamInbox = 64

func newWireClient(nc net.Conn) *wireClient {
	c := &wireClient{
		nc:      nc,
		streams: map[uint32]*wireStream{},
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

// open starts a stream by sending a request frame with flags and returns
// it, registered to receive frames.
func (c *wireClient) open(req *ttrpc.Request, flags byte, inbox int) (*wireStream, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
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
	if err := c.writeLocked(s.id, msgRequest, flags, req); err != nil {
		c.remove(s, err)
		return nil, err
	}
	return s, nil
}

// remove unregisters s; frames for it are dropped from now on.
func (c *wireClient) remove(s *wireStream, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
		c.nstreams.Add(-1)
		s.err = err
		close(s.done)
	}
}

// send writes one frame.
func (c *wireClient) send(id uint32, typ, flags byte, m proto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(id, typ, flags, m)
}

func (c *wireClient) writeLocked(id uint32, typ, flags byte, m proto.Message) error {
	b := append(c.wbuf[:0], make([]byte, frameHeaderLen)...)
	if m != nil {
		var err error
		if b, err = (proto.MarshalOptions{}).MarshalAppend(b, m); err != nil {
			return err
		}
	}
	if n := len(b) - frameHeaderLen; n > MaxFrameSize {
		return status.Errorf(codes.ResourceExhausted, "message length %d exceeds maximum message size of %d", n, MaxFrameSize)
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-frameHeaderLen))
	binary.BigEndian.PutUint32(b[4:8], id)
	b[8], b[9] = typ, flags
	if cap(b) <= 64<<10 {
		c.wbuf = b
	}
	if _, err := c.writeConn(b); err != nil {
		c.mu.Lock()
		cerr := c.err
		c.mu.Unlock()
		if cerr != nil {
			return cerr
		}
		return fmt.Errorf("%w: %w", ttrpc.ErrClosed, err)
	}
	return nil
}

// writeStall is how long a write may block before a helper starts reading
// on the caller's behalf.
const writeStall = time.Millisecond

// stalledWrite is a write in progress that a helper reader may serve.
type stalledWrite struct{ done bool } // done: guarded by wireClient.mu

// writeConn writes b. The callers only read while they wait for a frame,
// so while every caller is writing nobody would read: if the agent is
// itself blocked writing to us (full socket buffers both ways), neither
// side would move. A write that blocks for writeStall therefore starts a
// helper that holds the reader role, delivering frames to their streams,
// until the write is done.
func (c *wireClient) writeConn(b []byte) (int, error) {
	if c.bg || c.nstreams.Load() <= 1 {
		// Alone on the connection, the writer reads right after writing
		// and the agent only writes what it was asked for.
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
		select {
		case f := <-s.inbox:
			return f, nil
		default:
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
	select {
	case f := <-s.inbox:
		return f, true, nil
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
// another stream's frame was delivered or s ended.
func (c *wireClient) readUntil(s *wireStream) (wireFrame, bool, error) {
	for {
		id, f, err := c.readFrame()
		if err != nil {
			return wireFrame{}, false, err
		}
		c.mu.Lock()
		t := c.streams[id]
		abandoned := t != nil && t.abandoned
		c.mu.Unlock()
		if abandoned {
			c.remove(t, ttrpc.ErrClosed)
			t = nil
		}
		if t == s && s != nil {
			return f, true, nil
		}
		if t != nil {
			c.deliver(t, f)
			c.mu.Lock()
			abandoned = t.abandoned
			c.mu.Unlock()
			if abandoned {
				c.remove(t, ttrpc.ErrClosed)
			}
		} // else a stream we gave up on
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

// deliver queues f for t; a stream whose inbox stays full for a second
// (its reader stopped consuming) is ended with ttrpc.ErrStreamFull, as in
// ttrpc.
func (c *wireClient) deliver(t *wireStream, f wireFrame) {
	select {
	case t.inbox <- f:
		return
	case <-t.done:
		return
	default:
	}
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case t.inbox <- f:
	case <-t.done:
	case <-timer.C:
		c.remove(t, ttrpc.ErrStreamFull)
	}
}

// readFrame reads the next frame, resuming a partly read one. A read
// deadline yields errInterrupted; other errors are terminal.
func (c *wireClient) readFrame() (uint32, wireFrame, error) {
	for c.rbuf == nil {
		n, err := c.br.Read(c.rhdr[c.rhn:])
		c.rhn += n
		if c.rhn == frameHeaderLen {
			l := binary.BigEndian.Uint32(c.rhdr[:4])
			if l > MaxFrameSize {
				return 0, wireFrame{}, c.readErr(fmt.Errorf("%w: frame length %d exceeds %d", ttrpc.ErrProtocol, l, MaxFrameSize))
			}
			c.rbuf, c.rbn = make([]byte, l), 0
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
	f := wireFrame{typ: c.rhdr[8], flags: c.rhdr[9], payload: c.rbuf}
	id := binary.BigEndian.Uint32(c.rhdr[4:8])
	c.rbuf, c.rhn = nil, 0
	return id, f, nil
}

// readErr classifies a read error; terminal ones fail the connection.
func (c *wireClient) readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return errInterrupted
	}
	c.mu.Lock()
	cerr := c.err
	c.mu.Unlock()
	if cerr == nil {
		cerr = fmt.Errorf("%w: %w", ttrpc.ErrClosed, err)
		c.fail(cerr)
		c.nc.Close()
	}
	return cerr
}

// call makes a unary call: it sends req and decodes the response into resp.
func (c *wireClient) call(ctx context.Context, method string, in, resp proto.Message) error {
	payload, err := proto.Marshal(in)
	if err != nil {
		return err
	}
	req := &ttrpc.Request{Service: serviceName, Method: method, Payload: payload}
	if dl, ok := ctx.Deadline(); ok {
		req.TimeoutNano = max(time.Until(dl).Nanoseconds(), 1)
	}
	s, err := c.open(req, 0, 1)
	if err != nil {
		return err
	}
	f, err := c.recv(ctx, s)
	if err != nil {
		c.mu.Lock()
		s.abandoned = true
		replied := len(s.inbox) > 0
		c.mu.Unlock()
		if replied {
			c.remove(s, ttrpc.ErrClosed)
		}
		return err
	}
	c.remove(s, ttrpc.ErrClosed)
	if f.typ != msgResponse {
		return fmt.Errorf("unexpected message type %d: %w", f.typ, ttrpc.ErrProtocol)
	}
	return decodeResponse(f.payload, resp)
}

// decodeResponse decodes a ttrpc Response into m and returns its status.
func decodeResponse(b []byte, m proto.Message) error {
	var r ttrpc.Response
	if err := proto.Unmarshal(b, &r); err != nil {
		return err
	}
	if err := proto.Unmarshal(r.Payload, m); err != nil {
		return err
	}
	if r.Status != nil && r.Status.Code != int32(codes.OK) {
		return status.ErrorProto(r.Status)
	}
	return nil
}

// clientStream is a bidirectional stream (Exec, ReadFile, WriteFile) with
// In messages going to the agent and Out messages coming back.
type clientStream[In proto.Message, Out any, POut interface {
	*Out
	proto.Message
}] struct {
	c            *wireClient
	s            *wireStream
	ctx          context.Context
	localClosed  bool
	remoteClosed bool
}

// openStream starts method as a stream. The stream ends with ctx.
func openStream[In proto.Message, Out any, POut interface {
	*Out
	proto.Message
}](ctx context.Context, c *wireClient, method string) (*clientStream[In, Out, POut], error) {
	s, err := c.open(&ttrpc.Request{Service: serviceName, Method: method}, flagRemoteOpen, streamInbox)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { c.remove(s, ctx.Err()) })
	return &clientStream[In, Out, POut]{c: c, s: s, ctx: ctx}, nil
}

// Send sends one message.
func (cs *clientStream[In, Out, POut]) Send(m In) error {
	if cs.localClosed {
		return ttrpc.ErrStreamClosed
	}
	return cs.c.send(cs.s.id, msgData, 0, m)
}

// CloseSend tells the agent that no more messages follow.
func (cs *clientStream[In, Out, POut]) CloseSend() error {
	if cs.localClosed {
		return ttrpc.ErrStreamClosed
	}
	cs.localClosed = true
	return cs.c.send(cs.s.id, msgData, flagRemoteClose|flagNoData, nil)
}

// closeAndDrain closes our side, which tells the agent to stop (done or
// abandoned), then, unless remoteDone says the agent already ended the
// stream, reads until it does.
func (cs *clientStream[In, Out, POut]) closeAndDrain(remoteDone bool) {
	cs.CloseSend()
	for !remoteDone {
		if _, err := cs.Recv(); err != nil {
			return
		}
	}
}

// Recv returns the next message; io.EOF when the agent ended the stream
// cleanly, its status error otherwise.
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
	m := POut(new(Out))
	switch f.typ {
	case msgResponse:
		cs.end()
		if err := decodeResponse(f.payload, m); err != nil {
			return nil, err
		}
		return m, nil
	case msgData:
		if f.flags&flagRemoteClose != 0 {
			cs.end()
			if f.flags&flagNoData != 0 {
				return nil, io.EOF
			}
		}
		if err := proto.Unmarshal(f.payload, m); err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf("unexpected message type %d: %w", f.typ, ttrpc.ErrProtocol)
}

func (cs *clientStream[In, Out, POut]) end() {
	cs.remoteClosed = true
	cs.c.remove(cs.s, io.EOF)
}
