package guest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/retry"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer serves an in-process Server on a unix socket and returns its
// address; the server is closed when the test ends.
func startServer(t testing.TB, mod ...func(*Server)) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{}
	for _, m := range mod {
		m(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv, sock
}

func dial(t testing.TB, sock string) *agent.Client {
	t.Helper()
	conn, err := dialAuth(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	c := agent.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

// dialAuth connects to the unix socket sock and authenticates with token.
func dialAuth(sock, token string) (net.Conn, error) {
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := agent.Authenticate(ctx, conn, token); err != nil {
		return nil, err // it closed conn
	}
	return conn, nil
}

// newTestClient starts a server and connects a client to it.
func newTestClient(t testing.TB) *agent.Client {
	t.Helper()
	_, sock := startServer(t)
	return dial(t, sock)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitExited waits, on a pidfd, until pid has exited (a zombie counts);
// it reports false if pid did not exist to begin with.
func waitExited(t testing.TB, pid int) bool {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return false
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd: %v", err)
		}
		if n == 0 {
			t.Fatalf("process %d still running after 10s", pid)
		}
		return true
	}
}

// waitGone waits until pid no longer exists: it has exited (an event, on a
// pidfd) and the agent, its parent, has reaped it (which follows at once).
func waitGone(t testing.TB, pid int) {
	t.Helper()
	waitExited(t, pid)
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
