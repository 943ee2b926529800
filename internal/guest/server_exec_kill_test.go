package guest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent"
)

// readPID reads a pid a command wrote to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid in %s: %v", path, err)
	}
	return pid
}

// exitedNow reports whether pid has exited (a zombie awaiting a reaper that
// is not the agent counts).
func exitedNow(pid int) bool {
	if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
		return true
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || bytes.Contains(st, []byte(") Z "))
}

// TestExecTimeoutTerminates: a timeout sends SIGTERM first (a command
// that handles it gets to clean up), then SIGKILL after the grace to a
// group that ignores SIGTERM, children that outlive the leader included;
// Exec returns only once the whole group is gone.
func TestExecTimeoutTerminates(t *testing.T) {
	c := newTestClient(t)
	dir := t.TempDir()
	const timeout, grace = 200 * time.Millisecond, 400 * time.Millisecond
	tests := []struct {
		name       string
		script     string
		wantSignal string
		wantCode   int
		wantOut    string
		minTime    time.Duration
	}{
		{name: "handles TERM", script: `trap 'echo cleaned; exit 3' TERM; echo $$ > "$1"; sleep 100 & wait`,
			wantCode: 3, wantOut: "cleaned\n"},
		{name: "ignores TERM", script: `trap '' TERM; echo $$ > "$1"; sleep 100 & wait`,
			wantCode: -1, wantSignal: "SIGKILL", minTime: timeout + grace},
		{name: "child ignores TERM", script: `(trap '' TERM; exec sleep 100) & echo $! > "$1"; wait`,
			wantCode: -1, wantSignal: "SIGTERM", minTime: timeout + grace},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidFile := filepath.Join(dir, strconv.Itoa(i))
			var out bytes.Buffer
			began := time.Now()
			err := c.Exec(testContext(t), &agent.Cmd{
				Args:   []string{"sh", "-c", tt.script, "sh", pidFile},
				Stdout: &out, Timeout: timeout, KillGrace: grace,
			})
			took := time.Since(began)
			var ee *agent.ExitError
			if !errors.As(err, &ee) || !ee.TimedOut || ee.Code != tt.wantCode || ee.Signal != tt.wantSignal {
				t.Fatalf("Exec = %#v, want timed out, code %d, signal %q", err, tt.wantCode, tt.wantSignal)
			}
			if out.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", out.String(), tt.wantOut)
			}
			if took < tt.minTime || took > 10*time.Second {
				t.Errorf("took %v, want at least %v", took, tt.minTime)
			}
			// No waiting: the group is gone when Exec returns.
			if pid := readPID(t, pidFile); !exitedNow(pid) {
				t.Errorf("process %d outlived the timeout", pid)
			}
		})
	}
}

// TestExecTimeoutDefaultGrace: without KillGrace the agent waits 2 s
// between SIGTERM and SIGKILL.
func TestExecTimeoutDefaultGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("waits the 2 s default grace")
	}
	c := newTestClient(t)
	began := time.Now()
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"sh", "-c", `trap '' TERM; sleep 100`}, Timeout: 100 * time.Millisecond})
	var ee *agent.ExitError
	if !errors.As(err, &ee) || !ee.TimedOut || ee.Signal != "SIGKILL" {
		t.Fatalf("Exec = %v, want timed out by SIGKILL", err)
	}
	if took := time.Since(began); took < defaultKillGrace {
		t.Errorf("killed after %v, before the default grace %v", took, defaultKillGrace)
	}
}

func TestExecNegativeKillGrace(t *testing.T) {
	c := newTestClient(t)
	err := c.Exec(testContext(t), &agent.Cmd{Args: []string{"true"}, KillGrace: -1})
	if !errors.Is(err, fs.ErrInvalid) {
		t.Fatalf("Exec = %v, want fs.ErrInvalid", err)
	}
}

// TestExecSignal: Process.Signal reaches the command's whole group.
func TestExecSignal(t *testing.T) {
	c := newTestClient(t)
	tests := []struct {
		name       string
		script     string
		sig        syscall.Signal
		wantCode   int
		wantSignal string
		wantOut    string
	}{
		{name: "trapped", script: `trap 'echo usr1; exit 7' USR1; sleep 100 & echo ready; wait`, sig: syscall.SIGUSR1, wantCode: 7, wantOut: "ready\nusr1\n"},
		{name: "default action", script: `echo ready; exec sleep 100`, sig: syscall.SIGTERM, wantCode: -1, wantSignal: "SIGTERM", wantOut: "ready\n"},
		{name: "kill", script: `trap '' TERM INT; echo ready; sleep 100`, sig: syscall.SIGKILL, wantCode: -1, wantSignal: "SIGKILL", wantOut: "ready\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &readyWriter{ready: make(chan struct{})}
			p, err := c.Start(testContext(t), &agent.Cmd{Args: []string{"sh", "-c", tt.script}, Stdout: w})
			if err != nil {
				t.Fatal(err)
			}
			if p.PID() <= 0 {
				t.Errorf("PID() = %d", p.PID())
			}
			errc := make(chan error, 1)
			go func() { errc <- p.Wait() }()
			<-w.ready
			if err := p.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			err = <-errc
			var ee *agent.ExitError
			if !errors.As(err, &ee) || ee.Code != tt.wantCode || ee.Signal != tt.wantSignal || ee.TimedOut {
				t.Fatalf("Wait = %#v, want code %d signal %q", err, tt.wantCode, tt.wantSignal)
			}
			if w.buf.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", w.buf.String(), tt.wantOut)
			}
		})
	}
	if _, err := c.Start(testContext(t), &agent.Cmd{}); err == nil {
		t.Error("Start with no args succeeded")
	}
}

// readyWriter collects output and closes ready at the first "ready\n".
type readyWriter struct {
	buf   bytes.Buffer
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	had := strings.Contains(w.buf.String(), "ready\n")
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), "ready\n") {
		close(w.ready)
	}
	return len(p), nil
}

func TestParseStat(t *testing.T) {
	for _, tt := range []struct {
		line  string
		state byte
		pgrp  int
		ok    bool
	}{
		{"42 (sleep) S 1 40 40 0 -1", 'S', 40, true},
		{"42 (a b) c) Z 1 41 41 0", 'Z', 41, true},
		{"42 (x", 0, 0, false},
		{"42 (x) S 1", 0, 0, false},
	} {
		state, pgrp, ok := parseStat([]byte(tt.line))
		if state != tt.state || pgrp != tt.pgrp || ok != tt.ok {
			t.Errorf("parseStat(%q) = %c %d %v", tt.line, state, pgrp, ok)
		}
	}
}
