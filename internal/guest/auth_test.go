package guest

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

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
				if !errors.Is(err, agent.ErrRefused) {
					t.Fatalf("Authenticate = %v, want ErrRefused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := agent.NewClient(conn)
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
		if _, err := conn.Write(requestFrame(1, wire.ServiceName, wire.MethodPing, &agentpb.PingRequest{})); err != nil {
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
	// up after wire.MaxAuthLine bytes instead of buffering.
	go conn.Write([]byte(wire.AuthPrefix + strings.Repeat("a", 1<<20)))
	b, _ := io.ReadAll(conn)
	if len(b) != 0 {
		t.Errorf("read %q, want a close", b)
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
	if err := agent.SerialHandshake(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// A wrong token: the session is refused at once.
	if err := agent.Authenticate(ctx, conn, "wrong"); !errors.Is(err, agent.ErrRefused) || !errors.Is(err, agent.ErrAuth) {
		t.Fatalf("wrong token: %v, want ErrRefused", err)
	}

	// The next host with the right token is served.
	conn = port.connect()
	if err := agent.SerialHandshake(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := agent.Authenticate(ctx, conn, "s3cret"); err != nil {
		t.Fatal(err)
	}
	c := agent.NewClient(conn)
	defer c.Close()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRunOptions: WithToken sets the token; without it an in-process
// server (not a guest's init) keeps an empty token.
func TestRunOptions(t *testing.T) {
	var s Server
	s.applyRunOptions([]RunOption{WithToken("abc")}, s.logger())
	if s.Token != "abc" {
		t.Errorf("Token = %q, want abc", s.Token)
	}
	var none Server
	none.applyRunOptions(nil, none.logger())
	if none.Token != "" {
		t.Errorf("Token = %q without options outside a guest", none.Token)
	}
}
