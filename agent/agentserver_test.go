package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/wire"
	"github.com/pettyvm/petty/internal/guest"
	"github.com/pettyvm/petty/internal/retry"
)

// Helpers for the tests that need a real agent: an in-process
// internal/guest Server on a unix socket. (Test imports do not make the
// package link the guest; see TestDeps.)

// startServer serves an in-process agent on a unix socket and returns its
// address; the server is closed when the test ends.
func startServer(t testing.TB, mod ...func(*guest.Server)) (*guest.Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &guest.Server{}
	for _, m := range mod {
		m(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, guest.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, sock
}

// withToken sets the agent's token.
func withToken(tok string) func(*guest.Server) { return func(s *guest.Server) { s.Token = tok } }

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

// requestFrame is a unary request frame for method with msg.
func requestFrame(id uint32, service, method string, msg proto.Message) []byte {
	b, err := wire.AppendRequestFrame(nil, id, 0, service, method, msg, 0)
	if err != nil {
		panic(err)
	}
	return b
}

// frame is a frame of type typ without flags.
func frame(id uint32, typ byte, payload []byte) []byte { return rawFrame(id, typ, 0, payload) }

// waitGone waits until process pid has exited and been reaped.
func waitGone(t testing.TB, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := retry.Do(ctx, retry.Backoff{Min: 100 * time.Microsecond, Max: 10 * time.Millisecond}, func(context.Context) error {
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("process %d not reaped yet", pid)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
