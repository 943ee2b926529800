package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/agentpb"
)

// TestSyncCallsAmidStreams interleaves synchronously answered calls with a
// large ReadFile (ttrpc writes its frames in several writes) on one
// connection: every frame must arrive whole.
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
func readResponse(t *testing.T, r io.Reader) (uint32, *ttrpc.Response) {
	t.Helper()
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(h[:4]))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	if h[8] != msgResponse {
		t.Fatalf("frame type %d, want a response", h[8])
	}
	var resp ttrpc.Response
	if err := proto.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return binary.BigEndian.Uint32(h[4:8]), &resp
}

// TestReusedStreamID checks that a request reusing a stream id gets
// ttrpc's InvalidArgument, whichever path answered the first one.
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
		code codes.Code
	}{{3, codes.OK}, {3, codes.InvalidArgument}, {1, codes.InvalidArgument}, {5, codes.OK}} {
		if _, err := conn.Write(requestFrame(tt.id, svc, "Ping", &agentpb.PingRequest{})); err != nil {
			t.Fatal(err)
		}
		id, resp := readResponse(t, conn)
		if id != tt.id || codes.Code(resp.Status.GetCode()) != tt.code {
			t.Errorf("request on stream %d: response on %d with %v, want %v", tt.id, id, resp.Status, tt.code)
		}
	}
}

// TestClientCancelWhileReading cancels a call whose caller is reading the
// connection for everyone; a later call still gets its own reply.
func TestClientCancelWhileReading(t *testing.T) {
	host, guest := net.Pipe()
	c := NewClient(host)
	defer c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer guest.Close()
		for i := 0; ; i++ {
			var h [frameHeaderLen]byte
			if _, err := io.ReadFull(guest, h[:]); err != nil {
				return
			}
			if _, err := io.ReadFull(guest, make([]byte, binary.BigEndian.Uint32(h[:4]))); err != nil {
				return
			}
			if i == 0 {
				time.Sleep(200 * time.Millisecond) // after the caller gave up
			}
			p, _ := proto.Marshal(&agentpb.PingResponse{Pid: int64(i + 1)})
			r, _ := proto.Marshal(&ttrpc.Response{Payload: p})
			if _, err := guest.Write(frame(binary.BigEndian.Uint32(h[4:8]), msgResponse, r)); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping: %v, want DeadlineExceeded", err)
	}
	info, err := c.Ping(testContext(t))
	if err != nil || info.PID != 2 {
		t.Fatalf("second Ping: %+v, %v; want the second reply", info, err)
	}
	c.Close()
	if _, err := c.Ping(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
	<-done
}
