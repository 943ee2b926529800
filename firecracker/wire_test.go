package firecracker_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/pettyvm/petty/firecracker"
)

// microHTTP serves the exact bytes Firecracker's micro_http server writes:
// a status line without reason phrase, "Connection: keep-alive", no
// Content-Length on 204. It never closes a connection itself, and rejects a
// request whose body is not framed by Content-Length.
type microHTTP struct {
	accepted atomic.Int32
	l        net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	errs     []error
}

func startMicroHTTP(t *testing.T, path string, answer func(*http.Request) string) *microHTTP {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s := &microHTTP{l: l}
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c, answer) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		for _, err := range s.errs {
			t.Errorf("server: %v", err)
		}
	})
	return s
}

func (s *microHTTP) serve(c net.Conn, answer func(*http.Request) string) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return // the client or the cleanup closed the connection
		}
		if len(req.TransferEncoding) > 0 || req.Method != http.MethodGet && req.Header.Get("Content-Length") == "" {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s %s: body not framed by Content-Length", req.Method, req.RequestURI))
			s.mu.Unlock()
		}
		io.Copy(io.Discard, req.Body)
		if _, err := io.WriteString(c, answer(req)); err != nil {
			return
		}
	}
}

func TestMicroHTTPWire(t *testing.T) {
	path := socketPath(t, "fc.sock")
	s := startMicroHTTP(t, path, func(r *http.Request) string {
		switch r.Method + " " + r.URL.Path {
		case "GET /version":
			body := `{"firecracker_version":"1.16.1"}`
			return "HTTP/1.1 200 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n" +
				"Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
		case "PUT /drives/bad":
			body := `{"fault_message":"Unable to create the block device: No such file or directory (os error 2)"}`
			return "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n" +
				"Content-Type: application/json\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
		default:
			return "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n"
		}
	})
	c := firecracker.NewClient(path)
	defer c.Close()
	ctx := t.Context()

	for range 3 {
		if err := c.PutMachineConfig(ctx, firecracker.MachineConfiguration{VcpuCount: 1, MemSizeMib: 128}); err != nil {
			t.Fatalf("PutMachineConfig: %v", err)
		}
		v, err := c.Version(ctx)
		if err != nil || v != "1.16.1" {
			t.Fatalf("Version = %q, %v; want 1.16.1", v, err)
		}
		err = c.PutDrive(ctx, firecracker.Drive{DriveID: "bad", PathOnHost: "/nope"})
		want := &firecracker.APIError{Op: "PUT /drives/bad", StatusCode: 400, FaultMessage: "Unable to create the block device: No such file or directory (os error 2)"}
		var apiErr *firecracker.APIError
		if !errors.As(err, &apiErr) {
			t.Fatalf("PutDrive = %v, want *APIError", err)
		}
		if diff := cmp.Diff(want, apiErr); diff != "" {
			t.Errorf("APIError (-want +got):\n%s", diff)
		}
		if err := c.StartInstance(ctx); err != nil {
			t.Fatalf("StartInstance: %v", err)
		}
	}
	if got := s.accepted.Load(); got != 1 {
		t.Errorf("server accepted %d connections, want 1", got)
	}
}
