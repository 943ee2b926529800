package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pettyvm/petty/internal/testutil"
)

// withGuestPrefix returns the harness's environment with a fake guest that
// runs script in the background before it becomes the agent.
func (h *harness) withGuestPrefix(script string) []string {
	agent := testutil.Agent(h.t)
	return append(append([]string(nil), h.env...),
		"FAKEFC_GUEST_CMD=("+script+") & exec '"+agent+"' --listen unix://$FAKEFC_GUEST_DIR/1024")
}

// TestConsoleLogCapped: a guest that floods its console fills at most
// --console-limit bytes of the run directory, and petty logs prints the
// newest output.
func TestConsoleLogCapped(t *testing.T) {
	h := newHarness(t)
	const limit = 64 << 10
	// 4 MiB of numbered lines, then a last line.
	flood := `i=0; while [ $i -lt 40000 ]; do echo "flood line $i ................................................................................"; i=$((i+1)); done; echo LAST-LINE`
	c, stdout, stderr := h.command(nil, append([]string{"run", "--detach", "--name", "flood", "--console-limit", "64KiB"}, h.vmFlags()...)...)
	c.Env = h.withGuestPrefix(flood)
	if err := c.Run(); err != nil {
		t.Fatalf("run --detach: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	r := h.readRecord("flood")
	defer reapOrphan(t, r.SupervisorPID)
	defer h.run(nil, "rm", "flood")

	// Follow until the last line shows up (the flood runs in the guest).
	f, fstderr := h.startLogs(t, "flood")
	defer func() { f.Process.Kill(); f.Wait() }()
	found := false
	for f.lines.Scan() {
		if f.lines.Text() == "LAST-LINE" {
			found = true
			break
		}
	}
	if !found {
		f.Process.Kill()
		f.Wait()
		t.Fatalf("petty logs -f ended without LAST-LINE; stderr %q", fstderr)
	}
	var total int64
	for _, name := range []string{"console.log", "console.log.1"} {
		fi, err := os.Stat(filepath.Join(r.RunDir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		total += fi.Size()
	}
	if total > limit {
		t.Errorf("console logs hold %d bytes, limit %d", total, limit)
	}
	res := h.run(nil, "logs", "flood")
	if res.code != 0 || !strings.HasSuffix(res.stdout, "flood line 39999 ................................................................................\nLAST-LINE\n") {
		t.Errorf("logs: code %d, %d bytes ending %q; stderr %q", res.code, len(res.stdout), res.stdout[max(0, len(res.stdout)-200):], res.stderr)
	}
	if len(res.stdout) > limit {
		t.Errorf("logs printed %d bytes, more than the limit %d", len(res.stdout), limit)
	}
}

// follower is a running "petty logs -f".
type follower struct {
	*os.Process
	lines *bufio.Scanner
	wait  func() error
}

func (f *follower) Wait() error { return f.wait() }

func (h *harness) startLogs(t *testing.T, name string) (*follower, *strings.Builder) {
	t.Helper()
	c, _, _ := h.command(nil, "logs", "-f", name)
	var stderr strings.Builder
	c.Stdout, c.Stderr = nil, &stderr
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return &follower{Process: c.Process, lines: bufio.NewScanner(out), wait: c.Wait}, &stderr
}

// TestLogsFollowEndsWithVM: petty logs -f prints new console output as it
// comes and returns when the VM is stopped.
func TestLogsFollowEndsWithVM(t *testing.T) {
	h := newHarness(t)
	c, stdout, stderr := h.command(nil, append([]string{"run", "--detach", "--name", "ticker"}, h.vmFlags()...)...)
	c.Env = h.withGuestPrefix(`i=0; while :; do echo "tick $i"; i=$((i+1)); sleep 0.05; done`)
	if err := c.Run(); err != nil {
		t.Fatalf("run --detach: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	r := h.readRecord("ticker")
	defer reapOrphan(t, r.SupervisorPID)
	f, fstderr := h.startLogs(t, "ticker")
	defer f.Process.Kill()
	seen := map[string]bool{}
	for len(seen) < 5 && f.lines.Scan() {
		if strings.HasPrefix(f.lines.Text(), "tick ") {
			seen[f.lines.Text()] = true
		}
	}
	if len(seen) < 5 {
		f.Process.Kill()
		f.Wait()
		t.Fatalf("petty logs -f: %d tick lines; stderr %q", len(seen), fstderr)
	}
	h.stopAndCheckGone(t, "ticker", r)
	for f.lines.Scan() {
	}
	if err := f.Wait(); err != nil {
		t.Errorf("petty logs -f after stop: %v; stderr %q", err, fstderr)
	}
}

// TestGuestBytesEscaped: terminal control sequences a guest prints reach
// petty's stderr escaped, in -v console output and in an error's console
// tail.
func TestGuestBytesEscaped(t *testing.T) {
	h := newHarness(t)
	const evil = `printf '\033]0;pwned\007\033[2Jhello\n'`
	tests := []struct {
		name  string
		args  []string
		guest []string
		code  int
	}{
		{"-v console", append(append([]string{"-v", "run"}, h.vmFlags()...), "--", "true"), h.withGuestPrefix(evil), 0},
		{"error tail", append(append([]string{"run", "--boot-timeout", "2s"}, h.vmFlags()...), "--", "true"),
			append(append([]string(nil), h.env...), "FAKEFC_GUEST_CMD="+evil), 1}, // the guest exits: the VMM's error carries the tail
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, stderr := h.command(nil, tt.args...)
			c.Env = tt.guest
			_ = c.Run()
			if code := c.ProcessState.ExitCode(); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if strings.ContainsAny(stderr.String(), "\x1b\x07") {
				t.Errorf("raw control bytes on stderr: %q", stderr)
			}
			if !strings.Contains(stderr.String(), `\x1b]0;pwned\x07\x1b[2Jhello`) {
				t.Errorf("stderr lacks the escaped guest line: %q", stderr)
			}
		})
	}
}
