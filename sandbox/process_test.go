package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pettyvm/petty/sandbox"
)

// readUntil reads ch until the stdout read so far contains want.
func readUntil(t *testing.T, ch <-chan sandbox.Output, got *bytes.Buffer, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for !strings.Contains(got.String(), want) {
		select {
		case o, ok := <-ch:
			if !ok {
				t.Fatalf("output ended before %q: %q", want, got.String())
			}
			if !o.Stderr {
				got.Write(o.Data)
			}
		case <-timeout:
			t.Fatalf("no %q in the output after 30s: %q", want, got.String())
		}
	}
}

// drain reads ch until it is closed.
func drain(t *testing.T, ch <-chan sandbox.Output) (stdout, stderr []byte, dropped int64) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case o, ok := <-ch:
			if !ok {
				return stdout, stderr, dropped
			}
			if o.Stderr {
				stderr = append(stderr, o.Data...)
			} else {
				stdout = append(stdout, o.Data...)
			}
			dropped += o.Dropped
		case <-timeout:
			t.Fatal("output not closed after 30s")
		}
	}
}

func TestSignalProcess(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	ctx := t.Context()
	dir := t.TempDir()
	pid, err := s.Start(ctx, sandbox.StartOptions{
		Args: []string{"sh", "-c", `trap 'echo usr1 >&2; exit 5' USR1; sleep 100 & echo $$ $FOO; wait`},
		Env:  []string{"FOO=bar"}, Dir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	pi, ch, err := s.Follow(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.Write(pi.Stdout)
	readUntil(t, ch, &out, " bar\n")
	guestPID, _ := strconv.Atoi(strings.Fields(out.String())[0])
	pi, err = s.Process(pid)
	if err != nil {
		t.Fatal(err)
	}
	want := sandbox.ProcessInfo{PID: pid, GuestPID: int64(guestPID), Args: pi.Args, Env: []string{"FOO=bar"}, Dir: dir, Running: true}
	got := sandbox.ProcessInfo{PID: pi.PID, GuestPID: pi.GuestPID, Args: pi.Args, Env: pi.Env, Dir: pi.Dir, Running: pi.Running}
	if diff := cmp.Diff(want, got); diff != "" || len(pi.Args) != 3 || guestPID == 0 {
		t.Errorf("ProcessInfo (-want +got):\n%s", diff)
	}
	if err := s.Signal(ctx, pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	_, stderr, _ := drain(t, ch)
	if string(stderr) != "usr1\n" {
		t.Errorf("stderr %q, want the trap's", stderr)
	}
	if pi, _ = s.Process(pid); pi.Running || pi.Status.ExitCode != 5 || pi.Err != nil {
		t.Errorf("after SIGUSR1: %+v", pi)
	}
	waitGone(t, guestPID)
	for _, tt := range []struct {
		name string
		pid  int
		sig  syscall.Signal
		want error
	}{
		{"ended", pid, syscall.SIGTERM, os.ErrProcessDone},
		{"unknown pid", 999, syscall.SIGTERM, sandbox.ErrNoProcess},
		{"bad signal", pid, 0, sandbox.ErrInvalid},
	} {
		if err := s.Signal(ctx, tt.pid, tt.sig); !errors.Is(err, tt.want) {
			t.Errorf("%s: Signal = %v, want %v", tt.name, err, tt.want)
		}
	}
	// Kill reports SIGKILL as the status, and a command that is not found
	// fails Start itself.
	pid, err = s.Start(ctx, sandbox.StartOptions{Args: []string{"sleep", "100"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if pi, _ = s.Process(pid); pi.Running || pi.Status.Signal != "SIGKILL" || pi.Err != nil {
		t.Errorf("after Kill: %+v", pi)
	}
	if _, err := s.Start(ctx, sandbox.StartOptions{Args: []string{"petty-no-such-command"}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start of a missing command = %v, want fs.ErrNotExist", err)
	}
}

func TestProcessStdin(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	ctx := t.Context()
	pid, err := s.Start(ctx, sandbox.StartOptions{Args: []string{"sh", "-c", "while read l; do echo got $l; done; echo eof"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	_, ch, err := s.Follow(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s.WriteStdin(ctx, pid, []byte("one\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, ch, &out, "got one\n")
	if err := s.WriteStdin(ctx, pid, []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseStdin(pid); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseStdin(pid); err != nil {
		t.Errorf("second CloseStdin: %v", err)
	}
	if err := s.WriteStdin(ctx, pid, []byte("x")); !errors.Is(err, os.ErrClosed) && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("WriteStdin after CloseStdin = %v, want os.ErrClosed", err)
	}
	stdout, _, _ := drain(t, ch)
	if got := out.String() + string(stdout); got != "got one\ngot two\neof\n" {
		t.Errorf("output %q", got)
	}
	if pi, _ := s.Process(pid); pi.Running || pi.Status.ExitCode != 0 || !pi.Stdin {
		t.Errorf("after EOF: %+v", pi)
	}
	if err := s.WriteStdin(ctx, pid, []byte("x")); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("WriteStdin after the end = %v, want os.ErrProcessDone", err)
	}
	// A process without stdin refuses it; one that never reads it ends
	// anyway (the pipe's reader is stopped).
	pid, err = s.Start(ctx, sandbox.StartOptions{Args: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteStdin(ctx, pid, []byte("x")); !errors.Is(err, sandbox.ErrInvalid) && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("WriteStdin without Stdin = %v, want ErrInvalid", err)
	}
	pid, err = s.Start(ctx, sandbox.StartOptions{Args: []string{"true"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	_, ch, _ = s.Follow(ctx, pid)
	drain(t, ch)
}

// TestFollowSlowFollower: a follower that never reads does not slow the
// process nor the other follower; what it misses is counted exactly.
func TestFollowSlowFollower(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	ctx := t.Context()
	const total = 20 << 20
	pid, err := s.Start(ctx, sandbox.StartOptions{Args: []string{"sh", "-c", "read x; head -c " + strconv.Itoa(total) + " /dev/zero"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	_, slow, err := s.Follow(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	_, fast, err := s.Follow(ctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	_, cancelled, err := s.Follow(cctx, pid)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, _, d := drain(t, cancelled); d != 0 {
		t.Errorf("cancelled follower dropped %d", d)
	}
	if err := s.CloseStdin(pid); err != nil { // go
		t.Fatal(err)
	}
	out, _, dropped := drain(t, fast)
	if int64(len(out))+dropped != total {
		t.Errorf("fast follower: %d bytes + %d dropped, want %d", len(out), dropped, total)
	}
	if pi, _ := s.Process(pid); pi.Running || pi.Status.ExitCode != 0 {
		t.Errorf("process: %+v", pi.Status)
	}
	items := len(slow)
	out, _, dropped = drain(t, slow)
	if items > sandbox.FollowBuffer || int64(len(out))+dropped != total || dropped == 0 {
		t.Errorf("slow follower: %d items, %d bytes + %d dropped, want at most %d items summing to %d", items, len(out), dropped, sandbox.FollowBuffer, total)
	}
	// Following a process that ended gives its output and a closed channel.
	pi, ch, err := s.Follow(ctx, pid)
	if _, ok := <-ch; err != nil || ok || pi.Running || pi.StdoutDropped+int64(len(pi.Stdout)) != total {
		t.Errorf("Follow after the end: %v running %v", err, pi.Running)
	}
	if _, _, err := s.Follow(ctx, 999); !errors.Is(err, sandbox.ErrNoProcess) {
		t.Errorf("Follow(999) = %v", err)
	}
}

// TestExecUser: a command runs as the user it names (on the fake, the
// "guest" is the host, where tests run as root).
func TestExecUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running as another user needs root on the host (the fake's guest)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on the host")
	}
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"id", "-u"}, User: "nobody", Dir: "/"})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != u.Uid {
		t.Errorf("id -u as nobody = %q %q, %v; want %s", res.Stdout, res.Stderr, err, u.Uid)
	}
	pid, err := s.Start(t.Context(), sandbox.StartOptions{Args: []string{"id", "-u"}, User: "nobody", Dir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	_, ch, _ := s.Follow(t.Context(), pid)
	drain(t, ch)
	if pi, _ := s.Process(pid); strings.TrimSpace(string(pi.Stdout)) != u.Uid || pi.User != "nobody" {
		t.Errorf("background id -u as nobody = %q (User %q)", pi.Stdout, pi.User)
	}
	if _, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"true"}, User: "petty-no-such-user"}); !errors.Is(err, os.ErrInvalid) {
		t.Errorf("unknown user: %v, want fs.ErrInvalid", err)
	}
}

func TestParseSignal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want syscall.Signal
		err  bool
	}{
		{"", syscall.SIGKILL, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"term", syscall.SIGTERM, false},
		{"INT", syscall.SIGINT, false},
		{"9", syscall.SIGKILL, false},
		{"15", syscall.SIGTERM, false},
		{"SIGUSR1", syscall.SIGUSR1, false},
		{"0", 0, true},
		{"65", 0, true},
		{"SIGNOPE", 0, true},
		{"-1", 0, true},
	} {
		got, err := sandbox.ParseSignal(tt.in)
		if got != tt.want || (err != nil) != tt.err || (err != nil && !errors.Is(err, sandbox.ErrInvalid)) {
			t.Errorf("ParseSignal(%q) = %v, %v", tt.in, got, err)
		}
	}
}
