package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/internal/testutil"
)

// TestQEMUServeDebian drives petty serve over HTTP on a unix socket through
// a real QEMU/TCG guest of the Debian image: python, javascript and bash,
// commands and code as user (uid 1000), a timeout on a command that ignores
// SIGTERM and has children leaving no process (ps in the guest), a signal
// to a background process; then SIGTERM leaves no QEMU, run directory or
// socket behind.
func TestQEMUServeDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Debian image (minutes the first time)")
	}
	h := newQEMUHarness(t)
	img := testutil.DebianImage(t)
	sock := filepath.Join(testutil.ShortTempDir(t), "petty.sock")
	flags := []string{"--vmm", "qemu", "--boot-timeout", "3m", "--image", img.Dir, "--memory", "512", "--vcpus", "1"}
	cmd, addr, log := h.startServeVM(flags, []string{"PETTY_TOKEN=debian"}, "--listen", "unix://"+sock)
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	stopped := false
	defer func() {
		if !stopped {
			stopServe(t, cmd)
		}
	}()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: bearer{"debian", tr}}
	resp, err := (&http.Client{Transport: tr}).Get("http://localhost/mcp")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /mcp without the token: %d, want 401", resp.StatusCode)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: "http://localhost/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{"memory_mib": 512}, &created)
	id := created.SandboxID

	var out toolExecOut
	for _, tt := range []struct{ lang, code, user, want string }{
		{"python", "import os; print(6*7, os.getuid())", "", "42 0\n"},
		{"javascript", "console.log(6*7, process.getuid())", "", "42 0\n"},
		{"bash", "echo $((6*7)) $BASH_VERSINFO", "", "42 5\n"},
		{"python", "import os; print(os.getuid(), os.environ['HOME'], os.getcwd())", "user", "1000 /home/user /home/user\n"},
	} {
		out = toolExecOut{}
		mcpCall(t, cs, "execute_code", map[string]any{"sandbox_id": id, "language": tt.lang, "code": tt.code, "user": tt.user}, &out)
		if out.Stdout != tt.want || out.ExitCode == nil || *out.ExitCode != 0 {
			t.Errorf("execute_code %s as %q = %+v, want stdout %q", tt.lang, tt.user, out, tt.want)
		}
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "id -un; touch /root/x", "user": "user"}, &out)
	if out.Stdout != "user\n" || out.ExitCode == nil || *out.ExitCode == 0 || !strings.Contains(out.Stderr, "Permission denied") {
		t.Errorf("run_command as user = %+v, want user and a refused write to /root", out)
	}

	// A timeout leaves no process: the command ignores SIGTERM and has
	// children in its group; SIGKILL follows the grace.
	began := time.Now()
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "timeout_s": 2,
		"command": "trap '' TERM; sleep 300 & sleep 301 & sleep 302; wait"}, &out)
	if !out.TimedOut || time.Since(began) > 60*time.Second {
		t.Errorf("timed run = %+v after %v", out, time.Since(began))
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "ps -eo stat=,comm= | grep -w sleep || echo none"}, &out)
	if out.Stdout != "none\n" {
		t.Errorf("ps after the timeout: %q", out.Stdout)
	}

	// SIGTERM to a background process that handles it.
	var pid struct {
		PID int `json:"pid"`
	}
	mcpCall(t, cs, "start_process", map[string]any{"sandbox_id": id, "user": "user",
		"command": "trap 'echo term; exit 4' TERM; sleep 300 & echo ready; wait"}, &pid)
	type procOut struct {
		Stdout   string `json:"stdout"`
		Running  bool   `json:"running"`
		ExitCode *int   `json:"exit_code"`
	}
	var po procOut
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && po.Stdout != "ready\n"; time.Sleep(100 * time.Millisecond) {
		mcpCall(t, cs, "get_process_output", map[string]any{"sandbox_id": id, "pid": pid.PID}, &po)
	}
	var ok struct {
		Success bool `json:"success"`
	}
	mcpCall(t, cs, "kill_process", map[string]any{"sandbox_id": id, "pid": pid.PID, "signal": "TERM"}, &ok)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && (po.Running || po.ExitCode == nil); time.Sleep(100 * time.Millisecond) {
		mcpCall(t, cs, "get_process_output", map[string]any{"sandbox_id": id, "pid": pid.PID}, &po)
	}
	if po.Running || po.ExitCode == nil || *po.ExitCode != 4 || po.Stdout != "ready\nterm\n" {
		t.Errorf("after kill_process TERM: %+v", po)
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "ps -eo comm= | grep -w sleep || echo none"}, &out)
	if out.Stdout != "none\n" {
		t.Errorf("ps after the signal: %q", out.Stdout)
	}

	if len(qemuProcs(t, h.runDir)) != 1 {
		t.Errorf("want one QEMU, got %v", qemuProcs(t, h.runDir))
	}
	stopped = true
	stopServe(t, cmd) // checkClean and checkNoQEMU run at cleanup
	if pids := qemuProcs(t, h.runDir); len(pids) > 0 {
		t.Errorf("QEMU left after SIGTERM: %v", pids)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after SIGTERM: %v", err)
	}
}
