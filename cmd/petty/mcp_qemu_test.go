package main

import (
	"context"
	"encoding/base64"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestQEMUMCP drives the built petty mcp over stdio with the go-sdk client
// through real QEMU/TCG guests: exit codes and stderr, text and binary
// files, code, a timeout that leaves no process, two calls at once,
// a bounded 50 MB output, isolation, and stdin's close leaving no QEMU.
func TestQEMUMCP(t *testing.T) {
	h := newQEMUHarness(t)
	cmd := exec.Command(h.petty, append([]string{"mcp", "--vmm", "qemu", "--boot-timeout", "2m"}, qemuFlags...)...)
	cmd.Env = h.env
	var mu sync.Mutex
	progress := 0
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { mu.Lock(); progress++; mu.Unlock() },
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 25 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			cs.Close()
		}
	}()

	create := func() string {
		p := &mcp.CallToolParams{Name: "create_sandbox", Arguments: map[string]any{}}
		p.SetProgressToken("c")
		res, err := cs.CallTool(t.Context(), p)
		if err != nil || res.IsError {
			t.Fatalf("create_sandbox: %v %v", err, res)
		}
		return res.StructuredContent.(map[string]any)["sandbox_id"].(string)
	}
	var a, b string
	var wg sync.WaitGroup
	wg.Go(func() { a = create() })
	wg.Go(func() { b = create() })
	wg.Wait()
	if t.Failed() {
		return
	}
	mu.Lock()
	if progress == 0 {
		t.Error("no progress notification for create_sandbox")
	}
	mu.Unlock()

	type execOut struct {
		ExitCode  int    `json:"exit_code"`
		Stdout    string `json:"stdout"`
		Stderr    string `json:"stderr"`
		Truncated bool   `json:"truncated"`
		TimedOut  bool   `json:"timed_out"`
	}
	var out execOut
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": a, "command": "echo hi; echo oops >&2; exit 3"}, &out)
	if out.ExitCode != 3 || out.Stdout != "hi\n" || out.Stderr != "oops\n" {
		t.Errorf("run_command = %+v", out)
	}
	for _, lang := range []string{"bash", "sh"} {
		out = execOut{}
		mcpCall(t, cs, "execute_code", map[string]any{"sandbox_id": a, "language": lang, "code": "echo $((6*7))"}, &out)
		if out.Stdout != "42\n" {
			t.Errorf("execute_code %s = %+v", lang, out)
		}
	}

	var ok struct {
		Success bool `json:"success"`
	}
	mcpCall(t, cs, "write_file", map[string]any{"sandbox_id": a, "path": "/tmp/d/t.txt", "content": "text\n"}, &ok)
	mcpCall(t, cs, "write_file", map[string]any{"sandbox_id": a, "path": "/tmp/d/b.bin", "content": base64.StdEncoding.EncodeToString([]byte{0, 0xff, 1}), "encoding": "base64"}, &ok)
	var rd struct {
		Content string `json:"content"`
	}
	mcpCall(t, cs, "read_file", map[string]any{"sandbox_id": a, "path": "/tmp/d/t.txt"}, &rd)
	if rd.Content != "text\n" {
		t.Errorf("read_file text = %q", rd.Content)
	}
	mcpCall(t, cs, "read_file", map[string]any{"sandbox_id": a, "path": "/tmp/d/b.bin", "encoding": "base64"}, &rd)
	if rd.Content != base64.StdEncoding.EncodeToString([]byte{0, 0xff, 1}) {
		t.Errorf("read_file base64 = %q", rd.Content)
	}
	// Isolation.
	if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "read_file", Arguments: map[string]any{"sandbox_id": b, "path": "/tmp/d/t.txt"}}); err != nil || !res.IsError {
		t.Errorf("b reads a's file: %v %v", res, err)
	}

	// A timeout leaves no process.
	out = execOut{}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": a, "command": "sleep 300 & sleep 300; wait", "timeout_s": 2}, &out)
	if !out.TimedOut {
		t.Errorf("timed run = %+v", out)
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": a, "command": []string{"sh", "-c", "pgrep sleep || echo none"}}, &out)
	if out.Stdout != "none\n" {
		t.Errorf("sleeps left after the timeout: %q", out.Stdout)
	}

	// Two calls at once on one sandbox finish in the time of the longer.
	began := time.Now()
	wg.Go(func() {
		var o execOut
		mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": a, "command": "sleep 2"}, &o)
	})
	wg.Go(func() {
		var o execOut
		mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": b, "command": "sleep 2"}, &o)
	})
	wg.Wait()
	if el := time.Since(began); el > 3500*time.Millisecond {
		t.Errorf("two sleep 2 took %v", el)
	}

	// 50 MB of output: bounded and flagged; the session lives on.
	out = execOut{}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": b, "command": "head -c 50000000 /dev/zero | tr '\\0' x"}, &out)
	if !out.Truncated || len(out.Stdout) > 1<<20 {
		t.Errorf("50 MB: truncated %v, %d bytes", out.Truncated, len(out.Stdout))
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": b, "command": "echo alive"}, &out)
	if strings.TrimSpace(out.Stdout) != "alive" {
		t.Errorf("after 50 MB: %+v", out)
	}

	// stdin's close destroys every sandbox (checkNoQEMU runs at cleanup).
	closed = true
	if err := cs.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
		t.Errorf("petty mcp: %v", cmd.ProcessState)
	}
	if pids := qemuProcs(t, h.runDir); len(pids) > 0 {
		t.Errorf("QEMU left after stdin closed: %v", pids)
	}
}
