package firecracker_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// request is what the fake API server saw of one request.
type request struct {
	Method           string
	RequestURI       string
	ContentLength    string // the Content-Length header, "" when absent
	TransferEncoding []string
	ContentType      string
	Body             string
}

// fakeAPI is an HTTP server on a unix socket that records requests.
type fakeAPI struct {
	SocketPath string
	srv        *httptest.Server
	newConns   atomic.Int32

	mu   sync.Mutex
	reqs []request
}

// socketPath returns a path for a unix socket in a fresh directory, short
// enough for sun_path whatever the test's name.
func socketPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fctest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// newFakeAPI starts a server answering with h after recording the request.
func newFakeAPI(t *testing.T, h http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{SocketPath: socketPath(t, "api.sock")}
	l, err := net.Listen("unix", f.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{
			Method:           r.Method,
			RequestURI:       r.RequestURI,
			ContentLength:    r.Header.Get("Content-Length"),
			TransferEncoding: r.TransferEncoding,
			ContentType:      r.Header.Get("Content-Type"),
			Body:             string(body),
		})
		f.mu.Unlock()
		h(w, r)
	}))
	f.srv.Listener.Close()
	f.srv.Listener = l
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.newConns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

// Requests returns the requests seen so far and forgets them.
func (f *fakeAPI) Requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reqs
	f.reqs = nil
	return r
}
