package vsock_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// connResult is what the fake saw of one connection.
type connResult struct {
	Line         string // the request line, without "\n"
	ClientClosed bool   // the client end was closed while the fake held it
}

// handler plays Firecracker's part after the request line was read; it
// reports whether the client closed its end.
type handler func(c net.Conn, br *bufio.Reader, line string) (clientClosed bool)

// fakeFC is an in-process stand-in for the host side of Firecracker's vsock
// device: a unix listener that reads "CONNECT <port>\n" and calls a handler.
type fakeFC struct {
	Path     string
	Accepted atomic.Int32
	Results  chan connResult

	l  net.Listener
	wg sync.WaitGroup
	mu sync.Mutex
	cs []net.Conn
}

// tempSocketPath returns a socket path in a fresh directory, short enough
// for sun_path whatever the test's name.
func tempSocketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vsocktest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "v.sock")
}

// startFakeFC listens on path and serves every connection with h.
func startFakeFC(t *testing.T, path string, h handler) *fakeFC {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFC{Path: path, Results: make(chan connResult, 100), l: l}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.Accepted.Add(1)
			f.mu.Lock()
			f.cs = append(f.cs, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				line, err := br.ReadString('\n')
				if err != nil {
					f.Results <- connResult{Line: line, ClientClosed: errors.Is(err, io.EOF)}
					return
				}
				line = line[:len(line)-1]
				f.Results <- connResult{Line: line, ClientClosed: h(c, br, line)}
			}()
		}
	}()
	t.Cleanup(f.Stop)
	return f
}

// Stop closes the listener and every connection and waits for the handlers.
func (f *fakeFC) Stop() {
	f.l.Close()
	f.mu.Lock()
	for _, c := range f.cs {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Result returns the next connection's result.
func (f *fakeFC) Result(t *testing.T) connResult {
	t.Helper()
	select {
	case r := <-f.Results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the fake saw no connection end")
		return connResult{}
	}
}

// waitClientClose reads until the client closes its end.
func waitClientClose(c net.Conn, br *bufio.Reader) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, br)
	// Closing a unix socket with unread data resets the peer.
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

// answer writes s, then waits for the client to close.
func answer(s string) handler {
	return func(c net.Conn, br *bufio.Reader, _ string) bool {
		if _, err := io.WriteString(c, s); err != nil {
			return false
		}
		return waitClientClose(c, br)
	}
}

// echoAfter writes s, then echoes until the client closes.
func echoAfter(s string) handler {
	return func(c net.Conn, br *bufio.Reader, _ string) bool {
		if _, err := io.WriteString(c, s); err != nil {
			return false
		}
		_, err := io.Copy(c, br)
		return err == nil
	}
}

// notListening closes the connection at once, as Firecracker does when no
// guest process listens on the port.
func notListening(c net.Conn, _ *bufio.Reader, _ string) bool {
	c.Close()
	return false
}
