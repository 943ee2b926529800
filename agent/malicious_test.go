package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// The malicious fake agent tests. Each proves: no panic; the call returns
// (by its ctx's deadline plus abortWait at worst) with a typed error;
// other calls on the same Client proceed, or, where the connection had to
// be dropped, fail cleanly with ErrClosed; and the host's heap stays within
// heapBound of where it started while the agent keeps attacking.
//
// heapBound follows from Client's limits: one frame being read plus, for
// each call in progress, one frame and streamBuffer (2 MiB). The largest
// attack frame here is 1 MiB and at most two calls run at once, so about
// 7 MiB; heapBound leaves room for the runtime's own noise.
const heapBound = 16 << 20

// heapAlloc returns the live heap after a collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// checkHeap fails t if the live heap grew by more than heapBound since base.
func checkHeap(t *testing.T, base uint64, when string) {
	t.Helper()
	now := heapAlloc()
	grew := int64(now) - int64(base)
	t.Logf("%s: heap grew by %d KiB (bound %d KiB)", when, grew>>10, heapBound>>10)
	if grew > heapBound {
		t.Errorf("%s: heap grew by %d bytes, over the %d byte bound", when, grew, heapBound)
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	entered chan struct{} // closed at the first Write
	release chan struct{}
	first   bool
}

func newBlockingWriter() *blockingWriter {
	return &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if !w.first {
		w.first = true
		close(w.entered)
	}
	<-w.release
	return len(p), nil
}

// flood writes frames built by next on stream id until the test ends or a
// write fails, ignoring credits. It writes from its own goroutine: the
// fake's reader goes on reading the host.
func flood(f *fakeAgent, id uint32, next func(i int) []byte) {
	f.spawn(func() {
		for i := 0; ; i++ {
			select {
			case <-f.stop:
				return
			default:
			}
			if f.write(next(i)) != nil {
				return
			}
		}
	})
}

// floodingAgent answers Ping and floods every Exec and ReadFile stream
// with data messages of size bytes, ignoring credits.
func floodingAgent(size int) func(f *fakeAgent, h wire.Header, body []byte) {
	chunk := bytes.Repeat([]byte{'x'}, size)
	return func(f *fakeAgent, h wire.Header, body []byte) {
		if h.Type != wire.TypeRequest {
			return
		}
		id := h.StreamID
		switch method(body) {
		case wire.MethodPing:
			f.respond(id, &agentpb.PingResponse{Pid: 7})
		case wire.MethodExec:
			started, _ := wire.AppendFrame(nil, id, wire.TypeData, 0, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_StartedPid{StartedPid: 1}})
			m, _ := wire.AppendFrame(nil, id, wire.TypeData, 0, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Stdout{Stdout: chunk}})
			flood(f, id, func(i int) []byte {
				if i == 0 {
					return started
				}
				return m
			})
		case wire.MethodReadFile:
			m, _ := wire.AppendFrame(nil, id, wire.TypeData, 0, &agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Data{Data: chunk}})
			flood(f, id, func(int) []byte { return m })
		}
	}
}

// TestMaliciousStalledConsumer: the agent floods an Exec whose consumer
// has stopped (its Stdout blocks). The reader must not wait for that
// stream: it fails the stream once its inbox is full, and a Ping on the
// same Client is answered while the flood goes on.
func TestMaliciousStalledConsumer(t *testing.T) {
	for _, size := range []int{wire.ChunkSize, 1 << 20} {
		t.Run(byteSize(size), func(t *testing.T) {
			base := heapAlloc()
			c, _ := startFakeAgent(t, floodingAgent(size))
			ctx := testContext(t)
			w := newBlockingWriter()
			errc := make(chan error, 1)
			go func() { errc <- c.Exec(ctx, &Cmd{Args: []string{"yes"}, Stdout: w}) }()
			<-w.entered
			// Pings read the connection while the Exec's consumer is
			// stuck; they are answered, and the flood they read fills the
			// stalled stream's inbox until the host fails that stream.
			pings := 0
			for c.w.registered() > 0 {
				info, err := c.Ping(ctx)
				if err != nil || info.PID != 7 {
					t.Fatalf("Ping beside a stalled stream: %+v, %v", info, err)
				}
				pings++
			}
			t.Logf("%d Pings answered while the stalled stream filled up and failed", pings)
			checkHeap(t, base, "flood into a stalled stream")
			close(w.release)
			err := returnsBy(t, errc, 10*time.Second)
			if !errors.Is(err, ErrProtocol) || errors.Is(err, ErrClosed) {
				t.Errorf("Exec = %v, want ErrProtocol on the stream only", err)
			}
			if _, err := c.Ping(ctx); err != nil {
				t.Errorf("Ping after the stream failed: %v", err)
			}
			if n := c.w.registered(); n != 0 {
				t.Errorf("%d streams still registered", n)
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1<<20 {
		return "MiB"
	}
	return "chunk"
}

// TestMaliciousEndlessStream: the agent sends output and file data without
// end, within its credits, to consumers that keep up. The host
// acknowledges only what it consumed, so memory stays bounded; a Ping on
// the same Client is answered during the flood, and the calls return by
// their deadline. (An agent that ignores its credits is
// TestMaliciousStalledConsumer's.)
func TestMaliciousEndlessStream(t *testing.T) {
	const deadline = 300 * time.Millisecond
	base := heapAlloc()
	c, _ := startFakeAgent(t, honestFlood(math.MaxInt))
	// Mid-flood, a Ping runs beside the consumer that keeps up.
	pinged := make(chan error, 1)
	var once sync.Once
	w := writerFunc(func(p []byte) (int, error) {
		once.Do(func() {
			go func() {
				_, err := c.Ping(testContext(t))
				pinged <- err
			}()
		})
		return len(p), nil
	})
	for name, call := range map[string]func(context.Context) error{
		"Exec":     func(ctx context.Context) error { return c.Exec(ctx, &Cmd{Args: []string{"yes"}, Stdout: w}) },
		"CopyFrom": func(ctx context.Context) error { _, err := c.CopyFrom(ctx, "/dev/zero", io.Discard); return err },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		start := time.Now()
		err := call(ctx)
		cancel()
		if took := time.Since(start); took > deadline+2*abortWait+time.Second {
			t.Errorf("%s took %v, deadline %v", name, took, deadline)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s = %v, want DeadlineExceeded", name, err)
		}
	}
	if err := <-pinged; err != nil {
		t.Errorf("Ping during the flood: %v", err)
	}
	checkHeap(t, base, "endless streams")
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Errorf("Ping after the floods: %v", err)
	}
	if n := c.w.registered(); n != 0 {
		t.Errorf("%d streams still registered", n)
	}
}

// TestMaliciousConnectionErrors: replies that make the byte stream
// untrustworthy drop the connection: every call then fails with ErrClosed
// and ErrProtocol, at once, without a panic; a huge announced length
// allocates nothing.
func TestMaliciousConnectionErrors(t *testing.T) {
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	garbage[0] = 0xff // a length over the limit, whatever follows
	tests := []struct {
		name  string
		reply func(id uint32) []byte
	}{
		{"4 GiB length", func(id uint32) []byte { return rawFrame(id, wire.TypeResponse, 0, nil)[:4:4] }},
		{"over the frame limit", func(id uint32) []byte {
			b := rawFrame(id, wire.TypeResponse, 0, nil)
			wire.Header{Length: wire.MaxFrameSize + 1, StreamID: id, Type: wire.TypeResponse}.Put(b)
			return b
		}},
		{"garbage", func(uint32) []byte { return garbage }},
		{"unknown frame type", func(id uint32) []byte { return rawFrame(id, 7, 0, nil) }},
		{"even stream id", func(id uint32) []byte { return wire.AppendResponseFrame(nil, id+1, wire.Status{}, nil) }},
		{"stream never opened", func(id uint32) []byte { return wire.AppendResponseFrame(nil, id+200, wire.Status{}, nil) }},
		{"request from the agent", func(id uint32) []byte { return rawFrame(id, wire.TypeRequest, 0, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := startFakeAgent(t, func(f *fakeAgent, h wire.Header, body []byte) {
				b := tt.reply(h.StreamID)
				if tt.name == "4 GiB length" {
					b = append([]byte{0xff, 0xff, 0xff, 0xff}, rawFrame(h.StreamID, wire.TypeResponse, 0, nil)[4:]...)
				}
				f.write(b)
			})
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Ping(testContext(t))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrProtocol) || !errors.Is(err, ErrClosed) {
				t.Fatalf("Ping = %v, want ErrProtocol and ErrClosed", err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("allocated %d bytes for a bad reply", grew)
			}
			if _, err := c.Ping(testContext(t)); !errors.Is(err, ErrClosed) {
				t.Errorf("second Ping = %v, want ErrClosed", err)
			}
		})
	}
}

// TestMaliciousSilence: an agent that reads but never answers, and one
// that stops reading altogether. Calls return by their deadline (plus
// abortWait for a blocked write and for streams, which try to tell the
// agent to stop) and are deregistered.
func TestMaliciousSilence(t *testing.T) {
	const deadline = 200 * time.Millisecond
	slack := 2*abortWait + time.Second
	t.Run("reads, never answers", func(t *testing.T) {
		c, _ := startFakeAgent(t, nil)
		calls := map[string]func(ctx context.Context) error{
			"Ping":     func(ctx context.Context) error { _, err := c.Ping(ctx); return err },
			"Exec":     func(ctx context.Context) error { return c.Exec(ctx, &Cmd{Args: []string{"true"}}) },
			"ReadFile": func(ctx context.Context) error { _, err := c.ReadFile(ctx, "/f"); return err },
			"WriteFile": func(ctx context.Context) error {
				return c.WriteFile(ctx, "/f", make([]byte, 1<<20), 0o644)
			},
		}
		for name, call := range calls {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			start := time.Now()
			err := call(ctx)
			cancel()
			if took := time.Since(start); took > deadline+slack {
				t.Errorf("%s took %v, deadline %v", name, took, deadline)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s = %v, want DeadlineExceeded", name, err)
			}
		}
		if n := c.w.registered(); n != 0 {
			t.Errorf("%d streams still registered", n)
		}
	})
	t.Run("stops reading", func(t *testing.T) {
		stuck := make(chan struct{})
		c, f := startFakeAgent(t, func(f *fakeAgent, h wire.Header, body []byte) {
			select {
			case <-stuck:
			case <-f.stop:
			}
		})
		defer close(stuck)
		// The first frame is read, then nothing: writes block.
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		err := c.WriteFile(ctx, "/f", make([]byte, 8<<20), 0o644)
		if took := time.Since(start); took > deadline+slack {
			t.Errorf("WriteFile took %v, deadline %v", took, deadline)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrClosed) {
			t.Errorf("WriteFile = %v, want DeadlineExceeded (or ErrClosed if a frame was cut)", err)
		}
		ctx2, cancel2 := context.WithTimeout(context.Background(), deadline)
		defer cancel2()
		start = time.Now()
		if _, err := c.Ping(ctx2); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrClosed) {
			t.Errorf("Ping = %v, want DeadlineExceeded or ErrClosed", err)
		}
		if took := time.Since(start); took > deadline+slack {
			t.Errorf("Ping took %v, deadline %v", took, deadline)
		}
		_ = f
	})
}

// honestFlood answers Exec and ReadFile by sending total bytes in chunks,
// within the credits the host grants, then the end of the stream. It
// ignores Cmd.MaxOutput: the host must cap what it collects itself.
func honestFlood(total int) func(f *fakeAgent, h wire.Header, body []byte) {
	type stream struct {
		method  string
		credits chan int
	}
	streams := map[uint32]*stream{} // the fake's reader goroutine only
	chunk := bytes.Repeat([]byte{'y'}, wire.ChunkSize)
	return func(f *fakeAgent, h wire.Header, body []byte) {
		id := h.StreamID
		switch h.Type {
		case wire.TypeRequest:
			if method(body) == wire.MethodPing {
				f.respond(id, &agentpb.PingResponse{Pid: 7})
				return
			}
			s := &stream{method: method(body), credits: make(chan int, 1024)}
			streams[id] = s
			f.spawn(func() {
				window := wire.OutputWindow
				if s.method == wire.MethodExec {
					f.sendData(id, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_StartedPid{StartedPid: 1}})
				}
				for sent := 0; sent < total; sent += len(chunk) {
					for window == 0 {
						select {
						case n := <-s.credits:
							window += n
						case <-f.stop:
							return
						}
					}
					window--
					var err error
					if s.method == wire.MethodExec {
						err = f.sendData(id, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Stdout{Stdout: chunk}})
					} else {
						err = f.sendData(id, &agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Data{Data: chunk}})
					}
					if err != nil {
						return
					}
				}
				if s.method == wire.MethodExec {
					f.sendData(id, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Exit{Exit: &agentpb.ExecExit{}}})
				} else {
					f.sendData(id, &agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Eof{Eof: true}})
				}
				f.respond(id, nil)
			})
		case wire.TypeData:
			s := streams[id]
			if s == nil || h.Flags&wire.FlagNoData != 0 {
				return
			}
			var n uint32
			if s.method == wire.MethodExec {
				var in agentpb.ExecInput
				if proto.Unmarshal(body, &in) == nil {
					n = in.GetCredit()
				}
			} else {
				var in agentpb.ReadFileInput
				if proto.Unmarshal(body, &in) == nil {
					n = in.GetCredit()
				}
			}
			if n > 0 {
				s.credits <- int(n)
			}
		}
	}
}

// TestHostCaps: an agent that keeps within its credits but sends far more
// than the host collects in memory. Output stops at the host's limit and
// reports truncation; ReadFile fails with ErrTooLarge.
func TestHostCaps(t *testing.T) {
	const limit = 256 << 10
	base := heapAlloc()
	c, _ := startFakeAgent(t, honestFlood(8<<20), WithMaxOutput(limit), WithMaxReadFile(limit))
	ctx := testContext(t)
	out, err := c.Output(ctx, "yes")
	var ee *ExitError
	if !errors.As(err, &ee) || !ee.Truncated || len(out) != limit {
		t.Errorf("Output = %d bytes, %v; want %d bytes and a truncated *ExitError", len(out), err, limit)
	}
	data, err := c.ReadFile(ctx, "/dev/zero")
	var pe *fs.PathError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) || data != nil {
		t.Errorf("ReadFile = %d bytes, %v; want ErrTooLarge in an *fs.PathError", len(data), err)
	}
	checkHeap(t, base, "host caps")
	if _, err := c.CopyFrom(ctx, "/big", io.Discard); err != nil {
		t.Errorf("CopyFrom streams without the cap: %v", err)
	}
}
