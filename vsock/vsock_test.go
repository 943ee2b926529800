package vsock_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pettyvm/petty/vsock"
)

const hostPort = 1073741824 // what Firecracker answers: not the guest port

func TestDial(t *testing.T) {
	tests := []struct {
		name        string
		h           handler
		wantErrs    []error // all must match with errors.Is; nil means success
		wantMsg     string  // substring of the error message
		wantPayload string
		serverClose bool // the fake closes the connection itself
	}{
		{name: "OK", h: answer("OK 1073741824\n")},
		{name: "OK with payload in the same write", h: answer("OK 1073741824\nhello, host"), wantPayload: "hello, host"},
		{name: "not listening", h: notListening, wantErrs: []error{vsock.ErrHandshake, io.EOF}, serverClose: true},
		{name: "garbage", h: answer("HELLO there\n"), wantErrs: []error{vsock.ErrHandshake}, wantMsg: `"HELLO there"`},
		{name: "bad port", h: answer("OK abc\n"), wantErrs: []error{vsock.ErrHandshake}, wantMsg: `"OK abc"`},
		{name: "port out of range", h: answer("OK 4294967296\n"), wantErrs: []error{vsock.ErrHandshake}},
		{name: "no newline", h: answer(strings.Repeat("A", 200)), wantErrs: []error{vsock.ErrHandshake}, wantMsg: "answer too long"},
		{
			name: "partial answer then close",
			h: func(c net.Conn, _ *bufio.Reader, _ string) bool {
				io.WriteString(c, "OK 12")
				c.Close()
				return false
			},
			wantErrs:    []error{vsock.ErrHandshake, io.ErrUnexpectedEOF},
			serverClose: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeFC(t, tempSocketPath(t), tt.h)
			c, err := vsock.Dial(t.Context(), f.Path, 52)
			if tt.wantErrs != nil {
				if err == nil {
					c.Close()
					t.Fatal("Dial succeeded, want an error")
				}
				checkDialError(t, err, f.Path, 52, tt.wantErrs...)
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not contain %q", err, tt.wantMsg)
				}
				if errors.Is(err, io.EOF) && !tt.serverClose {
					t.Errorf("errors.Is(%v, io.EOF) = true for an answer", err)
				}
			} else {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				checkConn(t, c, f.Path, 52, tt.wantPayload)
				c.Close()
			}
			r := f.Result(t)
			if r.Line != "CONNECT 52" {
				t.Errorf("request line %q, want %q", r.Line, "CONNECT 52")
			}
			if !tt.serverClose && !r.ClientClosed {
				t.Error("the client did not close the connection")
			}
		})
	}
}

// checkDialError checks err is a vsock dial *net.OpError matching all targets.
func checkDialError(t *testing.T, err error, path string, port uint32, targets ...error) {
	t.Helper()
	t.Logf("error: %v", err)
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	opErr, ok := errors.AsType[*net.OpError](err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *net.OpError", err, err)
	}
	got := struct{ Op, Net, Addr string }{opErr.Op, opErr.Net, opErr.Addr.String()}
	want := struct{ Op, Net, Addr string }{"dial", "vsock", (&vsock.Addr{Path: path, Port: port}).String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OpError (-want +got):\n%s", diff)
	}
}

// checkConn checks c's addresses and that it first reads payload.
func checkConn(t *testing.T, c *vsock.Conn, path string, port uint32, payload string) {
	t.Helper()
	if c.HostPort() != hostPort {
		t.Errorf("HostPort = %d, want %d", c.HostPort(), hostPort)
	}
	addrs := []net.Addr{c.LocalAddr(), c.RemoteAddr()}
	want := []net.Addr{&vsock.Addr{Path: path, Port: hostPort}, &vsock.Addr{Path: path, Port: port}}
	if diff := cmp.Diff(want, addrs); diff != "" {
		t.Errorf("LocalAddr, RemoteAddr (-want +got):\n%s", diff)
	}
	if payload == "" {
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the payload: %v", err)
	}
	if string(got) != payload {
		t.Errorf("payload %q, want %q", got, payload)
	}
}

func TestDialSocketMissing(t *testing.T) {
	path := tempSocketPath(t)
	_, err := vsock.Dial(t.Context(), path, 52)
	checkDialError(t, err, path, 52, syscall.ENOENT, fs.ErrNotExist)
}

func TestDialEcho(t *testing.T) {
	f := startFakeFC(t, tempSocketPath(t), echoAfter("OK 1073741824\nfirst"))
	c, err := vsock.Dial(t.Context(), f.Path, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "firstping" {
		t.Errorf("read %q, want %q", got, "firstping")
	}
}

// silent reads the request line and never answers.
func silent(arrived chan<- struct{}) handler {
	return func(c net.Conn, br *bufio.Reader, _ string) bool {
		close(arrived)
		return waitClientClose(c, br)
	}
}

func TestDialContextEndsMidHandshake(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(ctx context.Context, arrived <-chan struct{}) (context.Context, context.CancelFunc)
		want error
	}{
		{
			name: "cancel",
			ctx: func(ctx context.Context, arrived <-chan struct{}) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				go func() {
					<-arrived
					cancel()
				}()
				return ctx, cancel
			},
			want: context.Canceled,
		},
		{
			name: "deadline",
			ctx: func(ctx context.Context, _ <-chan struct{}) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			},
			want: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{})
			f := startFakeFC(t, tempSocketPath(t), silent(arrived))
			ctx, cancel := tt.ctx(t.Context(), arrived)
			defer cancel()
			c, err := vsock.Dial(ctx, f.Path, 52)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			checkDialError(t, err, f.Path, 52, tt.want)
			if errors.Is(err, vsock.ErrHandshake) {
				t.Errorf("errors.Is(%v, ErrHandshake) = true, want false", err)
			}
			if r := f.Result(t); !r.ClientClosed {
				t.Error("the client did not close the connection")
			}
		})
	}
}

// TestDialSuccessClearsDeadline checks that ctx's deadline does not outlive
// the handshake: the guest's data is sent, and read, only once the
// deadline has passed.
func TestDialSuccessClearsDeadline(t *testing.T) {
	expired := make(chan struct{})
	f := startFakeFC(t, tempSocketPath(t), func(c net.Conn, br *bufio.Reader, _ string) bool {
		io.WriteString(c, "OK 1073741824\n")
		<-expired
		io.WriteString(c, "late")
		return waitClientClose(c, br)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	c, err := vsock.Dial(ctx, f.Path, 52)
	if err != nil {
		close(expired)
		t.Fatal(err)
	}
	defer c.Close()
	<-ctx.Done()
	close(expired)
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("ctx ended with %v, want its deadline", ctx.Err())
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read after ctx's deadline: %v", err)
	}
}

// TestDialRetrySocketAppears starts DialRetry before the socket exists and
// creates it once an attempt failed for want of it.
func TestDialRetrySocketAppears(t *testing.T) {
	path := tempSocketPath(t)
	failed := make(chan error, 1)
	defer vsock.SetTestHookRetry(func(err error) {
		select {
		case failed <- err:
		default:
		}
	})()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *vsock.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := vsock.DialRetry(ctx, path, 52)
		done <- result{c, err}
	}()
	if err := <-failed; !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("first attempt failed with %v, want ENOENT", err)
	}
	startFakeFC(t, path, answer("OK 1073741824\n"))
	r := <-done
	if r.err != nil {
		t.Fatalf("DialRetry: %v", r.err)
	}
	checkConn(t, r.c, path, 52, "")
	r.c.Close()
}

func TestDialRetryGuestStartsListening(t *testing.T) {
	var n atomic.Int32
	ok := answer("OK 1073741824\npayload")
	f := startFakeFC(t, tempSocketPath(t), func(c net.Conn, br *bufio.Reader, line string) bool {
		if n.Add(1) <= 3 {
			return notListening(c, br, line)
		}
		return ok(c, br, line)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := vsock.DialRetry(ctx, f.Path, 52)
	if err != nil {
		t.Fatalf("DialRetry: %v", err)
	}
	checkConn(t, c, f.Path, 52, "payload")
	c.Close()
	if got := f.Accepted.Load(); got != 4 {
		t.Errorf("fake accepted %d connections, want 4", got)
	}
}

func TestDialRetryGivesUp(t *testing.T) {
	tests := []struct {
		name         string
		h            handler
		timeout      time.Duration
		wantErrs     []error
		wantAccepted int32 // -1: more than one
		serverClose  bool  // the fake closes the connections itself
	}{
		{
			name:         "guest never listens",
			h:            notListening,
			timeout:      100 * time.Millisecond,
			wantErrs:     []error{context.DeadlineExceeded, vsock.ErrHandshake, io.EOF},
			wantAccepted: -1,
			serverClose:  true,
		},
		{
			name:         "garbage is not retried",
			h:            answer("NO\n"),
			timeout:      10 * time.Second,
			wantErrs:     []error{vsock.ErrHandshake},
			wantAccepted: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeFC(t, tempSocketPath(t), tt.h)
			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			c, err := vsock.DialRetry(ctx, f.Path, 52)
			if err == nil {
				c.Close()
				t.Fatal("DialRetry succeeded, want an error")
			}
			checkDialError(t, err, f.Path, 52, tt.wantErrs...)
			got := f.Accepted.Load()
			for range got {
				if r := f.Result(t); !tt.serverClose && !r.ClientClosed {
					t.Error("the client did not close a connection")
				}
			}
			if tt.wantAccepted == -1 && got < 2 || tt.wantAccepted != -1 && got != tt.wantAccepted {
				t.Errorf("fake accepted %d connections, want %d (-1: more than one)", got, tt.wantAccepted)
			}
		})
	}
}

func TestDialRetrySocketNeverAppears(t *testing.T) {
	path := tempSocketPath(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := vsock.DialRetry(ctx, path, 52)
	checkDialError(t, err, path, 52, context.DeadlineExceeded, syscall.ENOENT)
}

func TestListen(t *testing.T) {
	uds := tempSocketPath(t)
	l, err := vsock.Listen(uds, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if diff := cmp.Diff(net.Addr(&vsock.Addr{Path: uds, Port: 1024}), l.Addr()); diff != "" {
		t.Errorf("Addr (-want +got):\n%s", diff)
	}

	// Firecracker connects to <uds>_<port> for a guest connecting to port.
	client, err := net.Dial("unix", uds+"_1024")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := io.WriteString(client, "from guest"); err != nil {
		t.Fatal(err)
	}
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c, ok := nc.(*vsock.Conn)
	if !ok {
		t.Fatalf("Accept returned %T, want *vsock.Conn", nc)
	}
	if c.HostPort() != 1024 {
		t.Errorf("HostPort = %d, want 1024", c.HostPort())
	}
	got := make([]byte, len("from guest"))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "from guest" {
		t.Errorf("read %q, want %q", got, "from guest")
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Lstat(uds + "_1024"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

func TestListenExistingFile(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error // nil: Listen succeeds
	}{
		{
			name: "stale socket is removed",
			prepare: func(t *testing.T, path string) {
				l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
				if err != nil {
					t.Fatal(err)
				}
				l.SetUnlinkOnClose(false)
				l.Close()
			},
		},
		{
			name: "live socket is kept",
			prepare: func(t *testing.T, path string) {
				l, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			},
			wantErr: syscall.EADDRINUSE,
		},
		{
			name: "regular file is kept",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: syscall.EADDRINUSE,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uds := tempSocketPath(t)
			tt.prepare(t, uds+"_7")
			l, err := vsock.Listen(uds, 7)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Listen: %v", err)
				}
				l.Close()
				return
			}
			if err == nil {
				l.Close()
				t.Fatal("Listen succeeded, want an error")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantErr)
			}
			if opErr, ok := errors.AsType[*net.OpError](err); !ok || opErr.Op != "listen" || opErr.Net != "vsock" {
				t.Errorf("error %v is not a vsock listen *net.OpError", err)
			}
			if _, err := os.Lstat(uds + "_7"); err != nil {
				t.Errorf("the existing file was removed: %v", err)
			}
		})
	}
}
