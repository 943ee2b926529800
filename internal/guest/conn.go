package guest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// Serving one connection: the agent's only RPC implementation, over the
// frames of package wire.
//
// A reader goroutine per connection reads frames, each header checked
// before its body is allocated; a malformed one ends the connection.
// Requests for the cheap unary methods (Ping, Stat, ListDir, Shutdown) are
// answered on that goroutine, synchronously: no goroutine start or hand-off
// per call. Streams (Exec, ReadFile, WriteFile) get a handler goroutine
// each; their data frames go to a bounded inbox, and a host that
// overflows it (more than its credits allow) has that stream failed with
// ResourceExhausted. Whoever has a frame to send writes it whole under the
// connection's write lock. The connection ending cancels every handler's
// context, which kills the commands it started.

// conn is one connection being served.
type conn struct {
	srv    *Server
	nc     io.ReadWriteCloser
	ctx    context.Context
	cancel context.CancelFunc

	wmu     sync.Mutex
	wbuf    []byte
	wbroken bool

	mu      sync.Mutex
	streams map[uint32]*stream
	lastReq uint32 // highest request stream id seen

	handlers sync.WaitGroup
}

// serveConn serves nc until it fails or closes, then closes it and waits
// for its handlers.
func (s *Server) serveConn(nc io.ReadWriteCloser) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{srv: s, nc: nc, ctx: ctx, cancel: cancel, streams: map[uint32]*stream{}}
	defer func() {
		cancel()
		nc.Close()
		c.handlers.Wait()
	}()
	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		h, body, err := wire.ReadFrame(br, wire.MaxFrameSize)
		if err != nil {
			if errors.Is(err, wire.ErrMalformedFrame) {
				s.logger().Warn("dropping connection", "err", err)
			}
			return
		}
		switch h.Type {
		case wire.TypeRequest:
			c.request(h, body)
		case wire.TypeData:
			c.data(h, body)
		default:
			s.logger().Warn("dropping connection: a response frame from the host", "stream", h.StreamID)
			return
		}
	}
}

// request handles a request frame.
func (c *conn) request(h wire.Header, body []byte) {
	id := h.StreamID
	if id%2 != 1 {
		c.reply(id, wire.Status{Code: wire.InvalidArgument, Message: "StreamID must be odd for client initiated streams"}, nil)
		return
	}
	if id <= c.lastReq {
		c.reply(id, wire.Status{Code: wire.InvalidArgument, Message: "StreamID cannot be re-used and must increment"}, nil)
		return
	}
	c.lastReq = id
	var req wire.Request
	if err := req.Unmarshal(body); err != nil {
		c.reply(id, wire.Status{Code: wire.InvalidArgument, Message: err.Error()}, nil)
		return
	}
	if req.Service != wire.ServiceName {
		c.reply(id, wire.Status{Code: wire.Unimplemented, Message: "service " + req.Service + " not found"}, nil)
		return
	}
	svc := &service{srv: c.srv}
	switch req.Method {
	case wire.MethodPing:
		unary(c, id, req.Payload, svc.Ping)
	case wire.MethodStat:
		unary(c, id, req.Payload, svc.Stat)
	case wire.MethodListDir:
		unary(c, id, req.Payload, svc.ListDir)
	case wire.MethodShutdown:
		unary(c, id, req.Payload, svc.Shutdown)
	case wire.MethodRefresh:
		unary(c, id, req.Payload, svc.Refresh) // refresh_linux.go
	case wire.MethodExec:
		c.startStream(id, req.TimeoutNano, func(ctx context.Context, st *stream) error {
			return svc.Exec(ctx, execStream{st})
		})
	case wire.MethodReadFile:
		c.startStream(id, req.TimeoutNano, func(ctx context.Context, st *stream) error {
			return svc.ReadFile(ctx, readFileStream{st})
		})
	case wire.MethodWriteFile:
		c.startStream(id, req.TimeoutNano, func(ctx context.Context, st *stream) error {
			return svc.WriteFile(ctx, writeFileStream{st})
		})
	default:
		c.reply(id, wire.Status{Code: wire.Unimplemented, Message: "method " + req.Method + " not found"}, nil)
	}
}

// unary decodes a request payload, calls h on the reader's goroutine and
// writes its response.
func unary[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](c *conn, id uint32, payload []byte, h func(context.Context, PReq) (Resp, error)) {
	if !c.srv.begin() {
		c.reply(id, wire.Status{Code: wire.Unavailable, Message: "agent shutting down"}, nil)
		return
	}
	defer c.srv.end()
	in := PReq(new(Req))
	if err := proto.Unmarshal(payload, in); err != nil {
		c.reply(id, wire.Status{Code: wire.InvalidArgument, Message: "request: " + err.Error()}, nil)
		return
	}
	out, err := h(c.ctx, in)
	if err != nil {
		c.reply(id, toStatus(err), nil)
		return
	}
	c.reply(id, wire.Status{}, out)
}

// reply writes a response frame.
func (c *conn) reply(id uint32, st wire.Status, out proto.Message) {
	c.write(func(b []byte) ([]byte, error) { return wire.AppendResponseFrame(b, id, st, out), nil })
}

// write writes the frame that build appends, whole. After a failed write
// the connection is closed: a partial frame cannot be taken back.
func (c *conn) write(build func([]byte) ([]byte, error)) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wbroken {
		return net.ErrClosed
	}
	b, err := build(c.wbuf[:0])
	if err != nil {
		return err
	}
	if cap(b) <= 64<<10 {
		c.wbuf = b[:0]
	}
	if _, err := c.nc.Write(b); err != nil {
		c.wbroken = true
		c.cancel()
		c.nc.Close()
		return err
	}
	return nil
}

// data handles a data frame: its message goes to the stream's inbox.
// Frames for streams that ended, or after the host closed its side, are
// dropped.
func (c *conn) data(h wire.Header, body []byte) {
	c.mu.Lock()
	st := c.streams[h.StreamID]
	c.mu.Unlock()
	if st == nil || st.remoteClosed {
		return
	}
	if h.Flags&wire.FlagNoData == 0 {
		st.push(inFrame{payload: body})
	}
	if h.Flags&wire.FlagRemoteClose != 0 {
		st.remoteClosed = true
		st.push(inFrame{eof: true})
	}
}

// startStream registers stream id and runs handler on its own goroutine;
// when it returns, the stream ends with a response frame carrying its
// status.
func (c *conn) startStream(id uint32, timeoutNano int64, handler func(context.Context, *stream) error) {
	if !c.srv.begin() {
		c.reply(id, wire.Status{Code: wire.Unavailable, Message: "agent shutting down"}, nil)
		return
	}
	ctx, cancel := c.ctx, context.CancelFunc(func() {})
	if timeoutNano > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeoutNano))
	}
	ctx, cancel2 := context.WithCancel(ctx)
	st := &stream{c: c, id: id, ctx: ctx, cancel: cancel2, inbox: make(chan inFrame, wire.StreamInbox+1)}
	c.mu.Lock()
	c.streams[id] = st
	c.mu.Unlock()
	c.handlers.Go(func() {
		defer c.srv.end()
		defer cancel()
		err := handler(ctx, st)
		c.mu.Lock()
		delete(c.streams, id)
		c.mu.Unlock()
		cancel2()
		status := toStatus(err)
		if st.overrun.Load() {
			status = wire.Status{Code: wire.ResourceExhausted, Message: "the host sent more messages than its credits allow"}
		}
		c.reply(id, status, nil)
	})
}

// inFrame is a message received on a stream, or its end.
type inFrame struct {
	payload []byte
	eof     bool
}

// stream is the agent's side of a streaming call.
type stream struct {
	c      *conn
	id     uint32
	ctx    context.Context
	cancel context.CancelFunc
	inbox  chan inFrame

	remoteClosed bool        // the host closed its side (reader goroutine only)
	sawEOF       bool        // Recv returned io.EOF (handler only)
	overrun      atomic.Bool // the host overran the inbox
}

// push queues f; a full inbox means the host ignored its credits, and the
// stream fails.
func (s *stream) push(f inFrame) {
	select {
	case s.inbox <- f:
	default:
		if !s.overrun.Swap(true) {
			s.c.srv.logger().Warn("host overran a stream's credits, failing it", "stream", s.id)
		}
		s.cancel()
	}
}

// recv decodes the next message into m; io.EOF once the host closed its
// side.
func (s *stream) recv(m proto.Message) error {
	if s.sawEOF {
		return io.EOF
	}
	select {
	case f := <-s.inbox:
		if f.eof {
			s.sawEOF = true
			return io.EOF
		}
		if err := proto.Unmarshal(f.payload, m); err != nil {
			return errorf(wire.InvalidArgument, "message: %v", err)
		}
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// send writes m as a data frame.
func (s *stream) send(m proto.Message) error {
	return s.c.write(func(b []byte) ([]byte, error) {
		return wire.AppendFrame(b, s.id, wire.TypeData, 0, m)
	})
}

// The streams of the streaming methods.
type (
	execStream      = typedStream[agentpb.ExecInput, *agentpb.ExecOutput]
	readFileStream  = typedStream[agentpb.ReadFileInput, *agentpb.ReadFileOutput]
	writeFileStream = typedStream[agentpb.WriteFileInput, *agentpb.WriteFileOutput]
)

// typedStream gives a stream the typed Send and Recv of one method.
type typedStream[In any, Out proto.Message] struct{ s *stream }

// Send sends one message to the host.
func (t typedStream[In, Out]) Send(m Out) error { return t.s.send(m) }

// Recv returns the next message from the host; io.EOF once it closed its
// side.
func (t typedStream[In, Out]) Recv() (*In, error) {
	m := new(In)
	pm, ok := any(m).(proto.Message)
	if !ok {
		panic("typedStream: In is not a protobuf message")
	}
	if err := t.s.recv(pm); err != nil {
		return nil, err
	}
	return m, nil
}
