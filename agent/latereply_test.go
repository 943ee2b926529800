package agent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// TestLateReplyDoesNotBlockWriter: a ListDir gives up; the agent's reader
// then writes its large reply, blocking until the host reads it, while the
// host writes a file, alone on the connection. The host remembers that the
// agent may still write to the stream it gave up on, so a helper reads the
// late reply while the write is blocked, and the write completes.
func TestLateReplyDoesNotBlockWriter(t *testing.T) {
	gaveUp := make(chan struct{})
	out := make(chan []byte, 1024) // frames the fake writes on its own goroutine
	var wfile uint32
	var got bytes.Buffer
	c, f := startFakeAgent(t, func(f *fakeAgent, h wire.Header, body []byte) {
		switch {
		case h.Type == wire.TypeRequest && method(body) == wire.MethodListDir:
			select {
			case <-gaveUp:
			case <-f.stop:
				return
			}
			// Like the real agent, answer on the reader: it reads
			// nothing more until this is written.
			big := &agentpb.ListDirResponse{Entries: []*agentpb.FileInfo{{Name: strings.Repeat("n", 3<<20)}}}
			f.respond(h.StreamID, big)
		case h.Type == wire.TypeRequest && method(body) == wire.MethodWriteFile:
			wfile = h.StreamID
		case h.Type == wire.TypeData && h.StreamID == wfile:
			if h.Flags&wire.FlagRemoteClose != 0 {
				out <- wire.AppendResponseFrame(nil, wfile, wire.Status{}, nil)
				return
			}
			var in agentpb.WriteFileInput
			if proto.Unmarshal(body, &in) != nil {
				return
			}
			var m proto.Message
			switch in.Msg.(type) {
			case *agentpb.WriteFileInput_Data:
				got.Write(in.GetData())
				m = &agentpb.WriteFileOutput{Msg: &agentpb.WriteFileOutput_Credit{Credit: 1}}
			case *agentpb.WriteFileInput_Close:
				m = &agentpb.WriteFileOutput{Msg: &agentpb.WriteFileOutput_Written{Written: int64(got.Len())}}
			default:
				return
			}
			b, _ := wire.AppendFrame(nil, wfile, wire.TypeData, 0, m)
			out <- b
		}
	})
	f.spawn(func() {
		for {
			select {
			case b := <-out:
				if f.write(b) != nil {
					return
				}
			case <-f.stop:
				return
			}
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := c.ListDir(ctx, "/")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ListDir = %v, want DeadlineExceeded", err)
	}
	close(gaveUp)

	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WriteFile(ctx, "/f", data, 0o644); err != nil {
		t.Fatalf("WriteFile beside a late reply: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("agent got %d bytes, want %d", got.Len(), len(data))
	}
}
