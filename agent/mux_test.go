package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
	"github.com/pettyvm/petty/internal/guest"
	"github.com/pettyvm/petty/internal/retry"
)

// startMux starts an in-process agent and a Mux over one authenticated
// connection to it, serving on a unix socket; both end with the test.
func startMux(t *testing.T, mod ...func(*Mux)) (*guest.Server, *Mux, string) {
	t.Helper()
	srv, sock := startServer(t, withToken("agent-token"))
	up, err := dialAuth(sock, "agent-token")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMux(up)
	for _, f := range mod {
		f(m)
	}
	msock := filepath.Join(t.TempDir(), "mux.sock")
	l, err := net.Listen("unix", msock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve(l) }()
	t.Cleanup(func() {
		m.Close()
		if err := <-served; !errors.Is(err, ErrMuxClosed) {
			t.Errorf("Serve = %v, want ErrMuxClosed", err)
		}
	})
	return srv, m, msock
}

// muxClient connects a Client through the Mux's socket.
func muxClient(t *testing.T, sock string) *Client {
	t.Helper()
	conn, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

func routes(m *Mux) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.routes)
}

// waitFor waits, with internal/retry's backoff, until cond holds or 10
// seconds passed. (What it waits for, the Mux's route table emptying, has
// no event to wait on.)
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := retry.Do(ctx, retry.Backoff{Min: 100 * time.Microsecond, Max: 5 * time.Millisecond}, func(context.Context) error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("timed out waiting for %s: %v", what, err)
	}
}

// TestMuxConcurrentClients runs many clients, each with several calls at
// once, over one upstream connection; the commands overlap in time.
func TestMuxConcurrentClients(t *testing.T) {
	_, m, sock := startMux(t)
	ctx := testContext(t)
	const clients, calls = 8, 4
	const nap = 300 * time.Millisecond
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients*calls*2)
	for i := range clients {
		c := muxClient(t, sock)
		for j := range calls {
			wg.Go(func() {
				want := fmt.Sprintf("%d.%d", i, j)
				out, err := c.Output(ctx, "sh", "-c", "sleep 0.3; echo "+want)
				if err != nil || strings.TrimSpace(string(out)) != want {
					errs <- fmt.Errorf("client %d call %d: %q, %v", i, j, out, err)
				}
				if _, err := c.Ping(ctx); err != nil {
					errs <- fmt.Errorf("client %d ping: %v", i, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Serially the commands would take clients*calls*nap (9.6s).
	if d := time.Since(start); d > clients*calls*nap/4 {
		t.Errorf("%d overlapping calls took %v: not concurrent", clients*calls, d)
	}
	waitFor(t, "routes released", func() bool { return routes(m) == 0 })
}

// TestMuxStalledDownstream: a downstream that sends calls and never reads
// is dropped once its queue is full, while another client's calls go on.
func TestMuxStalledDownstream(t *testing.T) {
	_, m, sock := startMux(t, func(m *Mux) { m.maxQueue = 4 << 10 })
	ctx := testContext(t)
	stalled, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	good := muxClient(t, sock)

	// Flood the agent with pings whose answers nobody reads.
	var reqs bytes.Buffer
	for i := range 2000 {
		reqs.Write(requestFrame(uint32(2*i+1), "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{}))
	}
	writeDone := make(chan error, 1)
	go func() { _, err := stalled.Write(reqs.Bytes()); writeDone <- err }()

	// Meanwhile the good client keeps working.
	for range 20 {
		if out, err := good.Output(ctx, "echo", "ok"); err != nil || string(out) != "ok\n" {
			t.Fatalf("good client: %q, %v", out, err)
		}
	}
	<-writeDone
	// The stalled one was dropped: once we read what its socket buffered,
	// its connection ends.
	stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, stalled); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("stalled downstream not closed: %v", err)
	}
	if _, err := good.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "routes released", func() bool { return routes(m) == 0 })
}

// TestMuxOrphanedExec: closing a downstream kills the commands it started,
// as closing a connection to the agent does, even one that writes output
// endlessly, and the upstream ids are released.
func TestMuxOrphanedExec(t *testing.T) {
	for _, script := range []string{"echo $$; exec sleep 1000", "echo $$; exec yes"} {
		t.Run(script, func(t *testing.T) {
			_, m, sock := startMux(t)
			ctx := testContext(t)
			c := muxClient(t, sock)
			pidLine := make(chan string, 1)
			pw := &lineWriter{ch: pidLine}
			execDone := make(chan error, 1)
			go func() { execDone <- c.Exec(ctx, &Cmd{Args: []string{"sh", "-c", script}, Stdout: pw}) }()
			pid, err := strconv.Atoi(<-pidLine)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if err := <-execDone; err == nil {
				t.Error("Exec succeeded after Close")
			}
			waitGone(t, pid)
			waitFor(t, "routes released", func() bool { return routes(m) == 0 })
			// The upstream still serves others.
			if _, err := muxClient(t, sock).Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// lineWriter sends its first line to ch and discards the rest.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	ch   chan string
	sent bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent {
		w.buf = append(w.buf, p...)
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			w.ch <- string(w.buf[:i])
			w.sent = true
		}
	}
	return len(p), nil
}

// TestMuxUpstreamDeath: when the connection to the agent dies every
// downstream is closed and Serve returns.
func TestMuxUpstreamDeath(t *testing.T) {
	_, sock := startServer(t)
	agentConn, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	// The Mux reads the agent through a pipe that the test cuts.
	up, cut := net.Pipe()
	var copies sync.WaitGroup
	copies.Go(func() { io.Copy(agentConn, cut); agentConn.Close() })
	copies.Go(func() { io.Copy(cut, agentConn); cut.Close() })
	defer copies.Wait()
	m := NewMux(up)
	defer m.Close()
	msock := filepath.Join(t.TempDir(), "mux.sock")
	l, err := net.Listen("unix", msock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve(l) }()

	ctx := testContext(t)
	c1, c2 := muxClient(t, msock), muxClient(t, msock)
	if _, err := c1.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	execErr := make(chan error, 1)
	go func() { execErr <- c2.Exec(ctx, &Cmd{Args: []string{"sleep", "1000"}}) }()
	waitFor(t, "exec started", func() bool { return routes(m) == 1 })
	agentConn.Close()
	cut.Close()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Mux did not end with its upstream")
	}
	if err := <-served; !errors.Is(err, ErrMuxClosed) {
		t.Errorf("Serve = %v, want ErrMuxClosed", err)
	}
	if err := <-execErr; err == nil {
		t.Error("Exec succeeded")
	}
	if _, err := c1.Ping(ctx); err == nil {
		t.Error("Ping succeeded after the upstream died")
	}
	if _, err := net.Dial("unix", msock); err == nil {
		t.Error("the Mux still listens")
	}
}

func TestMuxAuth(t *testing.T) {
	_, _, sock := startMux(t, func(m *Mux) { m.Token = "mux-token" })
	if _, err := dialAuth(sock, "wrong"); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong token: %v, want ErrAuth", err)
	}
	conn, err := dialAuth(sock, "mux-token")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	defer c.Close()
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

// TestMuxBadDownstream: a downstream that breaks the protocol is dropped
// without harming the others.
func TestMuxBadDownstream(t *testing.T) {
	_, _, sock := startMux(t)
	ctx := testContext(t)
	good := muxClient(t, sock)
	for _, tt := range []struct {
		name  string
		input []byte
	}{
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0}},
		{"unknown type", frame(1, 9, nil)},
		{"response from a client", frame(1, wire.TypeResponse, nil)},
		{"even request id", requestFrame(2, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{})},
		{"reused request id", append(requestFrame(3, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{}),
			requestFrame(3, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{})...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := dialAuth(sock, "")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write(tt.input)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("connection not closed: %v", err)
			}
			if _, err := good.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMuxBadUpstream: an upstream announcing a frame over MaxFrameSize ends
// the Mux before it commits memory for it.
func TestMuxBadUpstream(t *testing.T) {
	up, agentEnd := net.Pipe()
	m := NewMux(up)
	defer m.Close()
	down, mine := net.Pipe()
	go m.ServeConn(down)
	if err := Authenticate(testContext(t), mine, ""); err != nil {
		t.Fatal(err)
	}
	var hdr [wire.HeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:4], MaxFrameSize+1)
	binary.BigEndian.PutUint32(hdr[4:8], 1)
	hdr[8] = wire.TypeResponse
	agentEnd.Write(hdr[:])
	<-m.Done()
	if _, err := mine.Read(make([]byte, 1)); err == nil {
		t.Error("downstream still open")
	}
	agentEnd.Close()
	mine.Close()
}

// TestMuxClose: Close ends the calls in progress and Serve.
func TestMuxClose(t *testing.T) {
	_, m, sock := startMux(t)
	c := muxClient(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	execErr := make(chan error, 1)
	go func() { execErr <- c.Exec(ctx, &Cmd{Args: []string{"sleep", "1000"}}) }()
	waitFor(t, "exec started", func() bool { return routes(m) == 1 })
	m.Close()
	if err := <-execErr; err == nil || ctx.Err() != nil {
		t.Errorf("Exec = %v (ctx %v), want a prompt failure", err, ctx.Err())
	}
}

// blockingIO signals its first call on started, then blocks until release.
type blockingIO struct {
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func newBlockingIO() *blockingIO {
	return &blockingIO{started: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockingIO) block() {
	b.once.Do(func() { close(b.started) })
	<-b.release
}

func (b *blockingIO) Write(p []byte) (int, error) { b.block(); return 0, io.ErrClosedPipe }
func (b *blockingIO) Read(p []byte) (int, error) {
	b.block()
	return 0, io.ErrClosedPipe
}

// TestMuxOrphanedFileStreams: a downstream that goes away in the middle of
// a ReadFile or a WriteFile leaves no stream behind on the agent.
func TestMuxOrphanedFileStreams(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		call func(ctx context.Context, c *Client, b *blockingIO) error
	}{
		{"ReadFile", func(ctx context.Context, c *Client, b *blockingIO) error {
			_, err := c.CopyFrom(ctx, big, b)
			return err
		}},
		{"WriteFile", func(ctx context.Context, c *Client, b *blockingIO) error {
			_, err := c.CopyTo(ctx, filepath.Join(t.TempDir(), "out"), io.MultiReader(bytes.NewReader(make([]byte, 64<<10)), b), 0o600)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, m, sock := startMux(t)
			ctx := testContext(t)
			c := muxClient(t, sock)
			b := newBlockingIO()
			done := make(chan error, 1)
			go func() { done <- tt.call(ctx, c, b) }()
			<-b.started
			waitFor(t, "stream open", func() bool { return routes(m) == 1 })
			c.Close()
			close(b.release)
			<-done
			waitFor(t, "routes released", func() bool { return routes(m) == 0 })
			if _, err := muxClient(t, sock).Ping(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}
