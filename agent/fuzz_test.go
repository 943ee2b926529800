package agent

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// FuzzHostFrames feeds arbitrary bytes, as the agent's side of the
// connection, to a real Client with a Ping, an Exec and a ReadFile in
// flight (streams 1, 3 and 5). Whatever the bytes, the Client must not
// panic, every call must return by its deadline, and what it allocates
// must stay bounded by the input and the host's limits (not by the lengths
// the bytes announce). The seeds are added below; failures found land in
// testdata/fuzz/FuzzHostFrames.
func FuzzHostFrames(f *testing.F) {
	data := func(id uint32, flags byte, m proto.Message) []byte {
		b, _ := wire.AppendFrame(nil, id, wire.TypeData, flags, m)
		return b
	}
	ping := wire.AppendResponseFrame(nil, 1, wire.Status{}, &agentpb.PingResponse{Version: "v", Pid: 1})
	var all []byte
	all = append(all, ping...)
	all = append(all, data(3, 0, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_StartedPid{StartedPid: 9}})...)
	all = append(all, data(5, 0, &agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Data{Data: []byte("x")}})...)
	all = append(all, data(3, 0, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Stdout{Stdout: []byte("hi\n")}})...)
	all = append(all, data(3, 0, &agentpb.ExecOutput{Msg: &agentpb.ExecOutput_Exit{Exit: &agentpb.ExecExit{Code: 3}}})...)
	all = append(all, data(5, 0, &agentpb.ReadFileOutput{Msg: &agentpb.ReadFileOutput_Eof{Eof: true}})...)
	all = append(all, wire.AppendResponseFrame(nil, 3, wire.Status{}, nil)...)
	f.Add(all)
	f.Add(ping)
	f.Add(append(append([]byte(nil), ping...), wire.AppendResponseFrame(nil, 5, wire.Status{Code: wire.NotFound, Message: "no"}, nil)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 2, 0})
	f.Add([]byte{0, 0x40, 0, 0, 0, 0, 0, 3, 3, 0})
	f.Add(rawFrame(2, wire.TypeResponse, 0, nil))
	f.Add(rawFrame(3, wire.TypeData, wire.FlagRemoteClose|wire.FlagNoData, nil))
	f.Add(rawFrame(1, wire.TypeResponse, 0, []byte{0x0a, 0xff}))

	f.Fuzz(func(t *testing.T, input []byte) {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		hostCalls(t, input)
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		// One frame body of at most its announced length (under
		// wire.MaxFrameSize) is allocated before its bytes arrive; all
		// else is proportional to the input or fixed.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20+64*uint64(len(input)) {
			t.Errorf("allocated %d bytes for %d bytes of input", grew, len(input))
		}
	})
}

// hostCalls runs a Ping, an Exec and a ReadFile against an agent that
// answers them with input and then hangs up.
func hostCalls(t *testing.T, input []byte) {
	const deadline = 2 * time.Second
	requests := make(chan struct{}, 3)
	c, fa := startFakeAgent(t, func(f *fakeAgent, h wire.Header, body []byte) {
		if h.Type == wire.TypeRequest {
			requests <- struct{}{}
		}
	}, WithMaxOutput(1<<20), WithMaxReadFile(1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	calls := []func() error{
		func() error { _, err := c.Ping(ctx); return err },
		func() error { return c.Exec(ctx, &Cmd{Args: []string{"x"}, Stdout: io.Discard}) },
		func() error { _, err := c.ReadFile(ctx, "/f"); return err },
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			err := call()
			if errors.Is(err, context.DeadlineExceeded) && time.Since(start) > deadline+2*abortWait+time.Second {
				t.Errorf("call returned %v after its deadline", time.Since(start)-deadline)
			}
		})
		<-requests // streams 1, 3, 5 in this order
	}
	// The input goes out, then the agent hangs up; calls that are done
	// before it all went out leave the rest unread.
	written := make(chan struct{})
	go func() {
		defer close(written)
		fa.write(input)
		fa.conn.Close()
	}()
	wg.Wait()
	fa.conn.Close()
	<-written
}
