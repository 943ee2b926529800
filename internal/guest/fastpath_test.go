package guest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// TestSyncCallsAmidStreams interleaves synchronously answered calls with a
// large ReadFile on one connection: every frame must arrive whole.
func TestSyncCallsAmidStreams(t *testing.T) {
	c := newTestClient(t)
	ctx := testContext(t)
	dir := t.TempDir()
	want := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	path := filepath.Join(dir, "big")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Ping(ctx); err != nil {
					t.Errorf("Ping: %v", err)
					return
				}
				if _, err := c.Stat(ctx, path); err != nil {
					t.Errorf("Stat: %v", err)
					return
				}
			}
		})
	}
	for range 3 {
		got, err := c.ReadFile(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("ReadFile: got %d bytes, want %d intact", len(got), len(want))
		}
	}
	close(stop)
	wg.Wait()
}

// readResponse reads one frame from r and decodes it as a Response.
func readResponse(t *testing.T, r io.Reader) (uint32, *wire.Response) {
	t.Helper()
	h, body, err := wire.ReadFrame(r, wire.MaxFrameSize)
	if err != nil {
		t.Fatal(err)
	}
	if h.Type != wire.TypeResponse {
		t.Fatalf("frame type %d, want a response", h.Type)
	}
	var resp wire.Response
	if err := resp.Unmarshal(body); err != nil {
		t.Fatal(err)
	}
	return h.StreamID, &resp
}

// TestReusedStreamID checks that a request reusing a stream id gets
// InvalidArgument.
func TestReusedStreamID(t *testing.T) {
	_, sock := startServer(t)
	conn, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const svc = "petty.agent.v1.Agent"
	for _, tt := range []struct {
		id   uint32
		code wire.Code
	}{{3, wire.OK}, {3, wire.InvalidArgument}, {1, wire.InvalidArgument}, {5, wire.OK}} {
		if _, err := conn.Write(requestFrame(tt.id, svc, "Ping", &agentpb.PingRequest{})); err != nil {
			t.Fatal(err)
		}
		id, resp := readResponse(t, conn)
		if id != tt.id || resp.Status.Code != tt.code {
			t.Errorf("request on stream %d: response on %d with %v, want %v", tt.id, id, resp.Status, tt.code)
		}
	}
}
