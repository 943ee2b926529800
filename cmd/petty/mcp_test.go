package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/vm"
)

// mcpSession starts "petty mcp <fake flags>" under the go-sdk's
// CommandTransport and returns the client session and the petty process.
func (h *harness) mcpSession(extra ...string) (*mcp.ClientSession, *exec.Cmd) {
	h.t.Helper()
	cmd := exec.Command(h.petty, append(append([]string{"mcp"}, h.vmFlags()...), extra...)...)
	cmd.Env = h.env
	ctx, cancel := context.WithTimeout(h.t.Context(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 20 * time.Second}, nil)
	if err != nil {
		h.t.Fatalf("connecting to petty mcp: %v", err)
	}
	return cs, cmd
}

// mcpCall calls tool and decodes its structured content into out.
func mcpCall(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any, out any) {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		var msg strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				msg.WriteString(tc.Text)
			}
		}
		t.Fatalf("%s: tool error: %s", tool, msg.String())
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
}

// vmmPID returns the PID of sandbox id's VMM, from its run directory.
func (h *harness) vmmPID(id string) int {
	h.t.Helper()
	at, err := vm.Attach(filepath.Join(h.runDir, id))
	if err != nil {
		h.t.Fatalf("attach %s: %v", id, err)
	}
	defer at.Close()
	if at.PID() == 0 {
		h.t.Fatalf("sandbox %s has no VMM running", id)
	}
	return at.PID()
}

func waitExit(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		reapOrphan(t, pid) // the test process is a subreaper
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("VMM %d still runs", pid)
	}
}

func TestMCPStdio(t *testing.T) {
	h := newHarness(t)
	cs, cmd := h.mcpSession()

	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
	var out struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": created.SandboxID, "command": []string{"echo", "hi"}}, &out)
	if out.Stdout != "hi\n" || out.ExitCode != 0 {
		t.Errorf("exec echo hi = %+v", out)
	}
	p := filepath.Join(t.TempDir(), "f.txt") // the fake's guest is the host
	var ok struct {
		Success bool `json:"success"`
	}
	mcpCall(t, cs, "write_file", map[string]any{"sandbox_id": created.SandboxID, "path": p, "content": "data"}, &ok)
	var rd struct {
		Content string `json:"content"`
	}
	mcpCall(t, cs, "read_file", map[string]any{"sandbox_id": created.SandboxID, "path": p}, &rd)
	if rd.Content != "data" {
		t.Errorf("read_file = %q", rd.Content)
	}
	pid := h.vmmPID(created.SandboxID)
	mcpCall(t, cs, "destroy_sandbox", map[string]any{"sandbox_id": created.SandboxID}, &ok)
	waitExit(t, pid)

	// Closing stdin ends the session and destroys every sandbox.
	var pids []int
	for range 2 {
		mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
		pids = append(pids, h.vmmPID(created.SandboxID))
	}
	if err := cs.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
		t.Errorf("petty mcp exited %v after stdin closed", cmd.ProcessState)
	}
	for _, pid := range pids {
		waitExit(t, pid)
	}
}

func TestMCPSigterm(t *testing.T) {
	h := newHarness(t)
	cs, cmd := h.mcpSession()
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
	pid := h.vmmPID(created.SandboxID)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cs.Wait()
	_ = cs.Close()
	if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
		t.Errorf("petty mcp exited %v after SIGTERM", cmd.ProcessState)
	}
	waitExit(t, pid)
}
