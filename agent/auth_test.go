package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
)

// dialAuth connects to the unix socket sock and authenticates with token.
func dialAuth(sock, token string) (net.Conn, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Authenticate(ctx, conn, token); err != nil {
		return nil, err // it closed conn
	}
	return conn, nil
}

func withToken(tok string) func(*Server) { return func(s *Server) { s.Token = tok } }

func TestAuthStream(t *testing.T) {
	tests := []struct {
		name, server, client string
		ok                   bool
	}{
		{"right token", "0123abcd", "0123abcd", true},
		{"wrong token", "0123abcd", "0123abce", false},
		{"prefix of the token", "0123abcd", "0123", false},
		{"empty token to a server with one", "0123abcd", "", false},
		{"server without token accepts any", "", "whatever", true},
		{"server without token accepts empty", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, sock := startServer(t, withToken(tt.server))
			conn, err := dialAuth(sock, tt.client)
			if !tt.ok {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("Authenticate = %v, want ErrRefused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := NewClient(conn)
			defer c.Close()
			if _, err := c.Ping(testContext(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestAuthLineRequired sends a frame without the auth line: the agent must
// close the connection without answering, token or not.
func TestAuthLineRequired(t *testing.T) {
	for _, tok := range []string{"", "secret"} {
		_, sock := startServer(t, withToken(tok))
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(requestFrame(1, "petty.agent.v1.Agent", "Ping", &agentpb.PingRequest{})); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(conn)
		if errors.Is(err, syscall.ECONNRESET) {
			err = nil // closed with our frame unread
		}
		if err != nil || len(b) != 0 {
			t.Errorf("token %q: read %q, %v; want a close without an answer", tok, b, err)
		}
	}
}

func TestAuthLongLine(t *testing.T) {
	_, sock := startServer(t)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// Far longer than any auth line, without a newline: the agent must give
	// up after maxAuthLine bytes instead of buffering.
	go conn.Write([]byte(authPrefix + strings.Repeat("a", 1<<20)))
	b, _ := io.ReadAll(conn)
	if len(b) != 0 {
		t.Errorf("read %q, want a close", b)
	}
}

// TestAuthenticateBounded: Authenticate reads nothing past the OK line, and
// a silent peer is bounded by ctx.
func TestAuthenticateBounded(t *testing.T) {
	host, guest := net.Pipe()
	defer guest.Close()
	go func() {
		readAuthLine(guest)
		guest.Write([]byte(authOK + "FRAMES"))
	}()
	if err := Authenticate(testContext(t), host, "t"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	if _, err := io.ReadFull(host, b); err != nil || string(b) != "FRAMES" {
		t.Fatalf("after auth: %q, %v", b, err)
	}

	host, guest = net.Pipe()
	defer guest.Close()
	go io.Copy(io.Discard, guest) // reads the line, never answers
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Authenticate(ctx, host, "t")
	if !errors.Is(err, ErrAuth) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent peer: %v, want ErrAuth and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	for _, bad := range []string{"two words", "new\nline", strings.Repeat("x", MaxTokenLen+1), `quo"te`} {
		a, b := net.Pipe()
		if err := Authenticate(testContext(t), a, bad); !errors.Is(err, ErrAuth) {
			t.Errorf("token %q: %v, want ErrAuth", bad, err)
		}
		b.Close()
	}
}

func TestAuthSerial(t *testing.T) {
	port := newFakeSerialPort(t)
	srv := &Server{Token: "s3cret"}
	done := make(chan error, 1)
	go func() { done <- srv.ServeSerial(port.guest) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeSerial: %v", err)
		}
	})
	ctx := testContext(t)

	conn := port.connect()
	if err := SerialHandshake(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// A wrong token: the session is refused at once.
	if err := Authenticate(ctx, conn, "wrong"); !errors.Is(err, ErrRefused) || !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong token: %v, want ErrRefused", err)
	}

	// The next host with the right token is served.
	conn = port.connect()
	if err := SerialHandshake(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := Authenticate(ctx, conn, "s3cret"); err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn)
	defer c.Close()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBootToken(t *testing.T) {
	for _, tt := range []struct{ cmdline, want string }{
		{"console=ttyS0 quiet", ""},
		{"petty.token=ab12 quiet", "ab12"},
		{"petty.token=old petty.listen=x petty.token=new\n", "new"},
		{"xpetty.token=no", ""},
	} {
		if got := BootToken(tt.cmdline); got != tt.want {
			t.Errorf("BootToken(%q) = %q, want %q", tt.cmdline, got, tt.want)
		}
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := ReadTokenFile(write("ok", "abc\n")); err != nil || tok != "abc" {
		t.Errorf("ReadTokenFile = %q, %v", tok, err)
	}
	for _, bad := range []string{"", "\n", "a b\n"} {
		if _, err := ReadTokenFile(write("bad", bad)); !errors.Is(err, ErrAuth) {
			t.Errorf("ReadTokenFile(%q) = %v, want ErrAuth", bad, err)
		}
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
