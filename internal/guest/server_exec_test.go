package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/agent"
)

func TestPing(t *testing.T) {
	c := newTestClient(t)
	info, err := c.Ping(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != Version || info.PID != os.Getpid() || info.Uptime <= 0 {
		t.Errorf("Ping = %+v", info)
	}
}

func TestExec(t *testing.T) {
	c := newTestClient(t)
	dir := t.TempDir()
	tests := []struct {
		name       string
		cmd        agent.Cmd
		wantOut    string
		wantErrOut string
		wantExit   *agent.ExitError
	}{
		{name: "echo", cmd: agent.Cmd{Args: []string{"echo", "hello", "world"}}, wantOut: "hello world\n"},
		{name: "true", cmd: agent.Cmd{Args: []string{"true"}}},
		{name: "false", cmd: agent.Cmd{Args: []string{"false"}}, wantExit: &agent.ExitError{Code: 1}},
		{name: "exit code", cmd: agent.Cmd{Args: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}}, wantOut: "out\n", wantErrOut: "err\n", wantExit: &agent.ExitError{Code: 3}},
		{name: "signal", cmd: agent.Cmd{Args: []string{"sh", "-c", "kill -TERM $$"}}, wantExit: &agent.ExitError{Code: -1, Signal: "SIGTERM"}},
		{name: "env", cmd: agent.Cmd{Args: []string{"sh", "-c", "echo $FOO"}, Env: []string{"FOO=bar"}}, wantOut: "bar\n"},
		{name: "dir", cmd: agent.Cmd{Args: []string{"pwd"}, Dir: dir}, wantOut: dir + "\n"},
		{name: "no stdin", cmd: agent.Cmd{Args: []string{"cat"}}},
		{name: "max output", cmd: agent.Cmd{Args: []string{"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"}, MaxOutput: 10}, wantOut: "xxxxxxxxxx", wantExit: &agent.ExitError{Truncated: true}},
		{name: "max output across streams", cmd: agent.Cmd{Args: []string{"sh", "-c", "echo 12345 >&2; sleep 0.1; echo 67890"}, MaxOutput: 8}, wantOut: "67", wantErrOut: "12345\n", wantExit: &agent.ExitError{Truncated: true}},
		{name: "max output not reached", cmd: agent.Cmd{Args: []string{"echo", "hi"}, MaxOutput: 3}, wantOut: "hi\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := tt.cmd
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := c.Exec(testContext(t), &cmd)
			var got *agent.ExitError
			if err != nil && !errors.As(err, &got) {
				t.Fatalf("Exec: %v", err)
			}
			if diff := cmp.Diff(tt.wantExit, got); diff != "" {
				t.Errorf("exit (-want +got):\n%s", diff)
			}
			if stdout.String() != tt.wantOut || stderr.String() != tt.wantErrOut {
				t.Errorf("stdout %q stderr %q, want %q %q", stdout.String(), stderr.String(), tt.wantOut, tt.wantErrOut)
			}
		})
	}
}

func TestExecStartErrors(t *testing.T) {
	c := newTestClient(t)
	noexec := filepath.Join(t.TempDir(), "noexec")
	if err := os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want error
	}{
		{"not found", []string{"petty-no-such-command"}, fs.ErrNotExist},
		{"missing path", []string{"/nonexistent/bin"}, fs.ErrNotExist},
		{"not executable", []string{noexec}, fs.ErrPermission},
		{"empty arg0", []string{""}, fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Exec(testContext(t), &agent.Cmd{Args: tt.args})
			if !errors.Is(err, tt.want) {
				t.Errorf("Exec(%q) = %v, want %v", tt.args, err, tt.want)
			}
		})
	}
	if err := c.Exec(testContext(t), &agent.Cmd{}); err == nil {
		t.Error("Exec with no args succeeded")
	}
}

func TestExecStdin(t *testing.T) {
	c := newTestClient(t)
	var out bytes.Buffer
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"cat"}, Stdin: strings.NewReader("hello\nworld\n"), Stdout: &out})
	if err != nil || out.String() != "hello\nworld\n" {
		t.Fatalf("cat = %q, %v", out.String(), err)
	}
	// A command that never reads stdin must not hang on it.
	big := bytes.NewReader(make([]byte, 8<<20))
	if err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"true"}, Stdin: big}); err != nil {
		t.Fatal(err)
	}
}

func TestExecLargeOutputIntact(t *testing.T) {
	c := newTestClient(t)
	data := make([]byte, 10<<20)
	rand.Read(data)
	var out bytes.Buffer
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"cat"}, Stdin: bytes.NewReader(data), Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("10 MiB through cat: got %d bytes, not equal", out.Len())
	}
}

// slowWriter is a consumer that stalls once. The agent respects its
// credits, so the stream's bounded inbox never fills and the stream lives.
type slowWriter struct {
	bytes.Buffer
	once sync.Once
}

func (w *slowWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { time.Sleep(500 * time.Millisecond) })
	return w.Buffer.Write(p)
}

func TestExecSlowConsumer(t *testing.T) {
	c := newTestClient(t)
	var w slowWriter
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"head", "-c", "4194304", "/dev/zero"}, Stdout: &w})
	if err != nil || w.Len() != 4<<20 {
		t.Fatalf("got %d bytes, %v", w.Len(), err)
	}
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	c := newTestClient(t)
	var out bytes.Buffer
	start := time.Now()
	err := c.Exec(testContext(t), &agent.Cmd{
		Args:    []string{"sh", "-c", "sleep 100 & echo $!; wait"},
		Stdout:  &out,
		Timeout: 300 * time.Millisecond,
	})
	var ee *agent.ExitError
	if !errors.As(err, &ee) || !ee.TimedOut || ee.Signal != "SIGTERM" {
		t.Fatalf("Exec = %v, want timed out by SIGTERM", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("child pid %q: %v", out.String(), err)
	}
	waitGoneOrZombie(t, pid)
}

// waitGoneOrZombie waits for a grandchild: it is reparented to the host's
// init (or a subreaper), which reaps it on its own schedule, so a zombie
// counts as killed.
func waitGoneOrZombie(t *testing.T, pid int) {
	t.Helper()
	waitExited(t, pid)
}

func TestExecConcurrent(t *testing.T) {
	c := newTestClient(t)
	ctx := testContext(t)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			want := fmt.Sprintf("job %d\n", i)
			var out bytes.Buffer
			err := c.Exec(ctx, &agent.Cmd{Args: []string{"sh", "-c", "sleep 0.05; cat"}, Stdin: strings.NewReader(want), Stdout: &out})
			if err == nil && out.String() != want {
				err = fmt.Errorf("job %d: got %q", i, out.String())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// pidWriter captures the first line (a pid) the command prints.
type pidWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	got chan int
}

func newPIDWriter() *pidWriter { return &pidWriter{got: make(chan int, 1)} }

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if line, _, ok := strings.Cut(w.buf.String(), "\n"); ok {
		if pid, err := strconv.Atoi(line); err == nil {
			select {
			case w.got <- pid:
			default:
			}
		}
	}
	return len(p), nil
}

func TestExecCancelKillsProcess(t *testing.T) {
	c := newTestClient(t)
	ctx, cancel := context.WithCancel(testContext(t))
	w := newPIDWriter()
	errc := make(chan error, 1)
	go func() {
		errc <- c.Exec(ctx, &agent.Cmd{Args: []string{"sh", "-c", "echo $$; exec sleep 100"}, Stdout: w})
	}()
	pid := <-w.got
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec = %v, want context.Canceled", err)
	}
	waitGone(t, pid)
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Fatalf("connection unusable after cancel: %v", err)
	}
}

func TestDisconnectMidExecKillsProcess(t *testing.T) {
	_, sock := startServer(t)
	c := dial(t, sock)
	w := newPIDWriter()
	errc := make(chan error, 1)
	go func() {
		errc <- c.Exec(context.Background(), &agent.Cmd{Args: []string{"sh", "-c", "echo $$; exec sleep 100"}, Stdout: w, Stdin: strings.NewReader("x")})
	}()
	pid := <-w.got
	c.Close()
	if err := <-errc; !errors.Is(err, agent.ErrClosed) {
		t.Errorf("Exec after Close = %v, want agent.ErrClosed", err)
	}
	waitGone(t, pid)
	// The agent keeps serving.
	if _, err := dial(t, sock).Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

func TestExecWriterError(t *testing.T) {
	c := newTestClient(t)
	errBoom := errors.New("boom")
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"sh", "-c", "while :; do echo y; done"}, Stdout: failWriter{errBoom}})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Exec = %v, want %v", err, errBoom)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestOutput(t *testing.T) {
	c := newTestClient(t)
	out, err := c.Output(testContext(t), "sh", "-c", "echo ok; echo bad >&2; exit 2")
	var ee *agent.ExitError
	if !errors.As(err, &ee) || ee.Code != 2 || string(ee.Stderr) != "bad\n" || string(out) != "ok\n" {
		t.Fatalf("Output = %q, %#v", out, err)
	}
}

var _ io.Writer = (*slowWriter)(nil)
