package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const greeting = `{"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}`

// fakeQMP is an in-test QMP server on a unix socket. handle answers one
// request line with the lines to send back (events may come first).
type fakeQMP struct {
	path     string
	greeting string
	handle   func(req map[string]any) []string

	mu       sync.Mutex
	commands []string
	wg       sync.WaitGroup
}

func startFakeQMP(t *testing.T, f *fakeQMP) *fakeQMP {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "qmp-")
	if err != nil {
		t.Fatal(err)
	}
	f.path = filepath.Join(dir, "qmp.sock")
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	if f.greeting == "" {
		f.greeting = greeting
	}
	var conns []net.Conn
	var connsMu sync.Mutex
	f.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			f.wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		f.wg.Wait()
		os.RemoveAll(dir)
	})
	return f
}

func (f *fakeQMP) serve(c net.Conn) {
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\r\n", f.greeting); err != nil {
		return
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var req map[string]any
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			fmt.Fprintf(c, `{"error": {"class": "GenericError", "desc": "JSON parse error"}}`+"\r\n")
			continue
		}
		cmd, _ := req["execute"].(string)
		f.mu.Lock()
		f.commands = append(f.commands, cmd)
		f.mu.Unlock()
		var lines []string
		if cmd == "qmp_capabilities" {
			lines = []string{reply(req, `{}`)}
		} else {
			lines = f.handle(req)
		}
		for _, l := range lines {
			if _, err := fmt.Fprintf(c, "%s\r\n", l); err != nil {
				return
			}
		}
	}
}

func (f *fakeQMP) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

// reply answers req with a return value.
func reply(req map[string]any, ret string) string {
	id, _ := json.Marshal(req["id"])
	return fmt.Sprintf(`{"return": %s, "id": %s}`, ret, id)
}

// replyError answers req with an error.
func replyError(req map[string]any, class, desc string) string {
	id, _ := json.Marshal(req["id"])
	return fmt.Sprintf(`{"id": %s, "error": {"class": %q, "desc": %q}}`, id, class, desc)
}

const event = `{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}`

func TestQMP(t *testing.T) {
	f := startFakeQMP(t, &fakeQMP{handle: func(req map[string]any) []string {
		switch req["execute"] {
		case "query-status":
			return []string{event, `{"return": {}, "id": "stale"}`, reply(req, `{"status": "running", "singlestep": false, "running": true}`)}
		case "stop", "cont", "system_powerdown", "quit":
			return []string{reply(req, `{}`), event}
		case "echo":
			args, _ := json.Marshal(req["arguments"])
			return []string{reply(req, string(args))}
		default:
			return []string{replyError(req, "CommandNotFound", fmt.Sprintf("The command %v has not been found", req["execute"]))}
		}
	}})
	ctx := t.Context()
	q, err := DialQMP(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if got := q.Greeting().Version.String(); got != "7.2.19" {
		t.Errorf("greeting version = %q, want 7.2.19", got)
	}
	if got := q.Greeting().Capabilities; !cmp.Equal(got, []string{"oob"}) {
		t.Errorf("greeting capabilities = %q", got)
	}
	st, err := q.QueryStatus(ctx)
	if err != nil || st != (Status{Running: true, Status: "running"}) {
		t.Errorf("QueryStatus = %+v, %v", st, err)
	}
	for _, call := range []func(context.Context) error{q.Stop, q.Cont, q.SystemPowerdown, q.Quit} {
		if err := call(ctx); err != nil {
			t.Error(err)
		}
	}
	var echoed map[string]int
	if err := q.Execute(ctx, "echo", map[string]int{"a": 1}, &echoed); err != nil || echoed["a"] != 1 {
		t.Errorf("echo = %v, %v", echoed, err)
	}

	err = q.Execute(ctx, "no-such-command", nil, nil)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" || !strings.Contains(qe.Desc, "no-such-command") {
		t.Errorf("unknown command error = %v, want a *QMPError of class CommandNotFound", err)
	}
	// The connection is still usable after a command error.
	if _, err := q.QueryStatus(ctx); err != nil {
		t.Errorf("QueryStatus after an error: %v", err)
	}
	want := []string{"qmp_capabilities", "query-status", "stop", "cont", "system_powerdown", "quit", "echo", "no-such-command", "query-status"}
	if diff := cmp.Diff(want, f.seen()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}

	if err := q.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := q.Stop(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after Close = %v, want ErrClosed", err)
	}
}

func TestQMPHandshakeErrors(t *testing.T) {
	tests := []struct {
		name     string
		greeting string
		handle   func(map[string]any) []string
		check    func(error) bool
	}{
		{
			name:     "bad greeting",
			greeting: `{"hello": 1}`,
			check:    func(err error) bool { return strings.Contains(err.Error(), "bad greeting") },
		},
		{
			name:     "event before the capabilities answer",
			greeting: greeting + "\r\n" + event,
			check:    func(err error) bool { return err == nil },
		},
		{
			name:     "garbage greeting",
			greeting: "not json",
			check:    func(err error) bool { return err != nil && strings.Contains(err.Error(), "bad greeting") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeQMP(t, &fakeQMP{greeting: tt.greeting, handle: tt.handle})
			q, err := DialQMP(t.Context(), f.path)
			if q != nil {
				q.Close()
			}
			if !tt.check(err) {
				t.Errorf("DialQMP = %v", err)
			}
		})
	}
}

// rawQMP serves one connection with a greeting and then runs fn on it.
func rawQMP(t *testing.T, fn func(c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "qmp-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "qmp.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "%s\r\n", greeting)
		fn(c, bufio.NewReader(c))
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return path
}

func TestQMPCapabilitiesError(t *testing.T) {
	path := rawQMP(t, func(c net.Conn, r *bufio.Reader) {
		line, _ := r.ReadBytes('\n')
		var req map[string]any
		_ = json.Unmarshal(line, &req)
		fmt.Fprintf(c, "%s\r\n", replyError(req, "CommandNotFound", "Capabilities negotiation is already complete, command ignored"))
		_, _ = r.ReadBytes('\n') // until the client closes
	})
	_, err := DialQMP(t.Context(), path)
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Errorf("DialQMP = %v, want a *QMPError", err)
	}
}

func TestQMPContext(t *testing.T) {
	release := make(chan struct{})
	path := rawQMP(t, func(c net.Conn, r *bufio.Reader) {
		line, _ := r.ReadBytes('\n')
		var req map[string]any
		_ = json.Unmarshal(line, &req)
		fmt.Fprintf(c, "%s\r\n", reply(req, "{}"))
		_, _ = r.ReadBytes('\n') // query-status: never answered
		<-release
	})
	defer close(release)
	q, err := DialQMP(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.QueryStatus(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("QueryStatus with no answer = %v, want DeadlineExceeded", err)
	}
	// The stream is out of step: later calls fail at once.
	if err := q.Stop(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after a timed-out command = %v, want ErrClosed", err)
	}
}

func TestQMPPeerGone(t *testing.T) {
	path := rawQMP(t, func(c net.Conn, r *bufio.Reader) {
		line, _ := r.ReadBytes('\n')
		var req map[string]any
		_ = json.Unmarshal(line, &req)
		fmt.Fprintf(c, "%s\r\n", reply(req, "{}"))
		_, _ = r.ReadBytes('\n') // then hang up, as an exiting QEMU does
	})
	q, err := DialQMP(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Quit(t.Context()); err == nil {
		t.Error("Quit on a vanished peer succeeded")
	}
	if err := q.Cont(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Cont after the peer left = %v, want ErrClosed", err)
	}
}
