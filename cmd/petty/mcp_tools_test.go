package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// allTools are the tools petty's MCP server offers.
var allTools = []string{"create_sandbox", "destroy_sandbox", "list_sandboxes", "run_command", "execute_code",
	"read_file", "write_file", "list_directory", "get_process_output", "kill_process", "start_process", "extend_timeout"}

// TestMCPTools drives every tool and every tool error through the built
// petty, over stdio (petty mcp) and over HTTP (petty serve), with the fake
// VMM (whose guest is the host: the QEMU tests cover isolation).
func TestMCPTools(t *testing.T) {
	h := newHarness(t)
	t.Run("stdio", func(t *testing.T) {
		cs, cmd := h.mcpSession()
		exerciseTools(t, cs)
		var created struct {
			SandboxID string `json:"sandbox_id"`
		}
		mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
		pid := h.vmmPID(created.SandboxID)
		_ = cs.Close() // stdin closes: the sandboxes go, petty exits 0
		if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
			t.Errorf("petty mcp exited %v after stdin closed", cmd.ProcessState)
		}
		waitExit(t, pid)
	})
	t.Run("http", func(t *testing.T) {
		cmd, addr, log := h.startServe([]string{"PETTY_TOKEN=tools"}, "--listen", "127.0.0.1:0")
		if addr == "" {
			t.Fatalf("no address:\n%s", log)
		}
		defer stopServe(t, cmd)
		connect := func() *mcp.ClientSession {
			hc := &http.Client{Transport: bearer{"tools", http.DefaultTransport}}
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
				Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: addr + "/mcp", HTTPClient: hc}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return cs
		}
		cs := connect()
		exerciseTools(t, cs)
		// Ending the HTTP session (the client's DELETE) destroys its
		// sandboxes, not another session's.
		other := connect()
		defer other.Close()
		var created, kept struct {
			SandboxID string `json:"sandbox_id"`
		}
		mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
		mcpCall(t, other, "create_sandbox", map[string]any{}, &kept)
		pid := h.vmmPID(created.SandboxID)
		if err := cs.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		waitExit(t, pid)
		var out struct {
			Stdout string `json:"stdout"`
		}
		mcpCall(t, other, "run_command", map[string]any{"sandbox_id": kept.SandboxID, "command": "echo kept"}, &out)
		if out.Stdout != "kept\n" {
			t.Errorf("the other session's sandbox: %+v", out)
		}
	})
}

// toolErr calls tool and returns the text of its tool error ("" and a test
// error when it succeeded).
func toolErr(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", tool, err)
	}
	if !res.IsError {
		t.Errorf("%s %v: no tool error", tool, args)
		return ""
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

type toolExecOut struct {
	ExitCode  *int   `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated"`
	TimedOut  bool   `json:"timed_out"`
	PID       *int   `json:"pid"`
}

// exerciseTools runs every tool and every tool error on cs.
func exerciseTools(t *testing.T, cs *mcp.ClientSession) {
	t.Helper()
	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	schemas := map[string]bool{}
	for _, tl := range tools.Tools {
		schemas[tl.Name] = tl.OutputSchema != nil
	}
	for _, n := range allTools {
		if !schemas[n] {
			t.Errorf("tool %s missing or without an output schema", n)
		}
	}

	var created struct {
		SandboxID string `json:"sandbox_id"`
		MemoryMiB int    `json:"memory_mib"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{"env": map[string]string{"GREETING": "hi"}, "timeout_s": 600}, &created)
	id := created.SandboxID
	var list struct {
		Sandboxes []struct {
			SandboxID string `json:"sandbox_id"`
			State     string `json:"state"`
			CreatedAt string `json:"created_at"`
			Image     string `json:"image"`
			MemoryMiB int    `json:"memory_mib"`
			VCPUCount int    `json:"vcpu_count"`
		} `json:"sandboxes"`
	}
	mcpCall(t, cs, "list_sandboxes", map[string]any{}, &list)
	found := false
	for _, s := range list.Sandboxes {
		if s.SandboxID == id {
			found = s.State == "running" && s.CreatedAt != "" && s.Image != "" && s.MemoryMiB == created.MemoryMiB && s.VCPUCount > 0
		}
	}
	if !found {
		t.Errorf("list_sandboxes = %+v, want %s running with its fields", list, id)
	}

	// Commands: exit code and stderr, env, cwd, stdin.
	dir := t.TempDir() // the fake's guest is the host
	var out toolExecOut
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": `echo $GREETING $X; echo oops >&2; exit 3`, "env": map[string]string{"X": "there"}}, &out)
	if out.ExitCode == nil || *out.ExitCode != 3 || out.Stdout != "hi there\n" || out.Stderr != "oops\n" || out.Truncated || out.TimedOut {
		t.Errorf("run_command = %+v", out)
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": []string{"sh", "-c", "pwd; cat"}, "cwd": dir, "stdin": "in"}, &out)
	if out.Stdout != dir+"\nin" {
		t.Errorf("run_command cwd+stdin = %+v", out)
	}
	if u, err := user.Lookup("nobody"); err == nil && os.Getuid() == 0 {
		mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "id -u", "user": "nobody", "cwd": "/"}, &out)
		if strings.TrimSpace(out.Stdout) != u.Uid {
			t.Errorf("run_command as nobody = %+v", out)
		}
	}

	// A timeout leaves no process: the command ignores SIGTERM and has a
	// child; both are gone when the result comes.
	pidFile := filepath.Join(dir, "pids")
	began := time.Now()
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "timeout_s": 1,
		"command": `trap '' TERM; sleep 60 & echo $$ $! > ` + pidFile + `; wait`}, &out)
	if !out.TimedOut || time.Since(began) > 10*time.Second {
		t.Errorf("timed run = %+v after %v", out, time.Since(began))
	}
	if b, err := os.ReadFile(pidFile); err != nil {
		t.Error(err)
	} else {
		for _, f := range strings.Fields(string(b)) {
			if pid, _ := strconv.Atoi(f); pid > 0 && processLives(pid) {
				t.Errorf("process %d outlived the timeout", pid)
			}
		}
	}

	// Two calls at once finish in the time of the longer.
	began = time.Now()
	var wg sync.WaitGroup
	for _, d := range []string{"1", "1.5"} {
		wg.Go(func() {
			var o toolExecOut
			mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": []string{"sleep", d}}, &o)
		})
	}
	wg.Wait()
	if el := time.Since(began); el > 2400*time.Millisecond {
		t.Errorf("sleep 1 and sleep 1.5 at once took %v", el)
	}

	// 50 MB of output: truncated, and the encoded message stays bounded.
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_command", Arguments: map[string]any{"sandbox_id": id, "command": "head -c 50000000 /dev/zero"}})
	if err != nil || res.IsError {
		t.Fatalf("50 MB: %v %v", err, res)
	}
	enc, _ := json.Marshal(res)
	if tr, _ := res.StructuredContent.(map[string]any)["truncated"].(bool); !tr || len(enc) > 5<<20 {
		t.Errorf("50 MB: truncated %v, %d bytes encoded (want at most 5 MiB)", tr, len(enc))
	}

	// Languages.
	for _, tt := range []struct{ lang, prog, code string }{
		{"bash", "bash", "echo $((6*7))"},
		{"sh", "sh", "echo $((6*7))"},
		{"python", "python3", "print(6*7)"},
		{"javascript", "node", "console.log(6*7)"},
	} {
		if _, err := exec.LookPath(tt.prog); err != nil {
			t.Logf("execute_code %s: skipped, %s not on the host (the fake's guest)", tt.lang, tt.prog)
			continue
		}
		out = toolExecOut{}
		mcpCall(t, cs, "execute_code", map[string]any{"sandbox_id": id, "language": tt.lang, "code": tt.code}, &out)
		if out.Stdout != "42\n" || out.ExitCode == nil || *out.ExitCode != 0 {
			t.Errorf("execute_code %s = %+v", tt.lang, out)
		}
	}

	// Files: text and binary, parents created, listed.
	var wr struct {
		Success bool  `json:"success"`
		Size    int64 `json:"size"`
	}
	txt, bin := filepath.Join(dir, "a/b/t.txt"), filepath.Join(dir, "a/bin")
	binData := []byte{0, 0xff, 0xfe, 'x', 0}
	mcpCall(t, cs, "write_file", map[string]any{"sandbox_id": id, "path": txt, "content": "héllo\n"}, &wr)
	if !wr.Success || wr.Size != 7 {
		t.Errorf("write_file text = %+v", wr)
	}
	mcpCall(t, cs, "write_file", map[string]any{"sandbox_id": id, "path": bin, "content": base64.StdEncoding.EncodeToString(binData), "encoding": "base64", "mode": "0600"}, &wr)
	var rd struct {
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
		Size     int64  `json:"size"`
	}
	mcpCall(t, cs, "read_file", map[string]any{"sandbox_id": id, "path": txt}, &rd)
	if rd.Content != "héllo\n" || rd.Encoding != "utf-8" || rd.Size != 7 {
		t.Errorf("read_file text = %+v", rd)
	}
	mcpCall(t, cs, "read_file", map[string]any{"sandbox_id": id, "path": bin, "encoding": "base64"}, &rd)
	if got, _ := base64.StdEncoding.DecodeString(rd.Content); string(got) != string(binData) {
		t.Errorf("read_file base64 = %+v", rd)
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("write_file mode 0600: %v %v", fi, err)
	}
	var ls struct {
		Entries []struct {
			Name  string `json:"name"`
			IsDir bool   `json:"is_dir"`
			Size  int64  `json:"size"`
		} `json:"entries"`
	}
	mcpCall(t, cs, "list_directory", map[string]any{"sandbox_id": id, "path": filepath.Join(dir, "a")}, &ls)
	if len(ls.Entries) != 2 || ls.Entries[0].Name != "b" || !ls.Entries[0].IsDir || ls.Entries[1].Name != "bin" || ls.Entries[1].Size != 5 {
		t.Errorf("list_directory = %+v", ls)
	}

	// Background processes: output later, a signal the process handles,
	// SIGKILL by default.
	var pid struct {
		PID int `json:"pid"`
	}
	mcpCall(t, cs, "start_process", map[string]any{"sandbox_id": id, "command": `trap 'echo term; exit 4' TERM; sleep 60 & echo ready; wait`}, &pid)
	type procOut struct {
		Stdout   string `json:"stdout"`
		Running  bool   `json:"running"`
		ExitCode *int   `json:"exit_code"`
	}
	poll := func(pid int, done func(procOut) bool) procOut {
		var po procOut
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if mcpCall(t, cs, "get_process_output", map[string]any{"sandbox_id": id, "pid": pid}, &po); done(po) {
				break
			}
		}
		return po
	}
	poll(pid.PID, func(po procOut) bool { return po.Stdout == "ready\n" })
	var ok struct {
		Success bool `json:"success"`
	}
	mcpCall(t, cs, "kill_process", map[string]any{"sandbox_id": id, "pid": pid.PID, "signal": "SIGTERM"}, &ok)
	if po := poll(pid.PID, func(po procOut) bool { return !po.Running }); po.ExitCode == nil || *po.ExitCode != 4 || po.Stdout != "ready\nterm\n" {
		t.Errorf("after kill_process SIGTERM: %+v", po)
	}
	out = toolExecOut{}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "echo bg; exec sleep 60", "background": true}, &out)
	if out.PID == nil || out.ExitCode != nil {
		t.Fatalf("run_command background = %+v", out)
	}
	poll(*out.PID, func(po procOut) bool { return po.Stdout == "bg\n" })
	mcpCall(t, cs, "kill_process", map[string]any{"sandbox_id": id, "pid": *out.PID}, &ok)
	if po := poll(*out.PID, func(po procOut) bool { return !po.Running }); po.Running || po.ExitCode == nil || *po.ExitCode != -1 {
		t.Errorf("after kill_process: %+v", po)
	}
	var ext struct {
		Success   bool   `json:"success"`
		ExpiresAt string `json:"expires_at"`
	}
	mcpCall(t, cs, "extend_timeout", map[string]any{"sandbox_id": id, "timeout_s": 1200}, &ext)
	if !ext.Success || ext.ExpiresAt == "" {
		t.Errorf("extend_timeout = %+v", ext)
	}

	// Every tool error, with a message that says what is wrong.
	for tool, args := range map[string]map[string]any{
		"destroy_sandbox":    {},
		"run_command":        {"command": "true"},
		"execute_code":       {"language": "sh", "code": "true"},
		"read_file":          {"path": "/"},
		"write_file":         {"path": "/x", "content": ""},
		"list_directory":     {"path": "/"},
		"get_process_output": {"pid": 1},
		"kill_process":       {"pid": 1},
		"start_process":      {"command": "true"},
		"extend_timeout":     {"timeout_s": 60},
	} {
		args["sandbox_id"] = "no-such-sandbox"
		if msg := toolErr(t, cs, tool, args); !strings.Contains(msg, "unknown or destroyed sandbox") {
			t.Errorf("%s on an unknown sandbox: %q", tool, msg)
		}
	}
	for _, tt := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"create_sandbox", map[string]any{"memory_mib": 16}, "below the minimum"},
		{"create_sandbox", map[string]any{"timeout_s": -1}, "timeout_s must be positive"},
		{"read_file", map[string]any{"sandbox_id": id, "path": filepath.Join(dir, "missing")}, "no such file"},
		{"read_file", map[string]any{"sandbox_id": id, "path": bin}, "base64"},
		{"list_directory", map[string]any{"sandbox_id": id, "path": filepath.Join(dir, "missing")}, "no such file"},
		{"write_file", map[string]any{"sandbox_id": id, "path": txt, "content": "!!", "encoding": "base64"}, "base64"},
		{"run_command", map[string]any{"sandbox_id": id}, "command is required"},
		{"run_command", map[string]any{"sandbox_id": id, "command": []string{"no-such-program-xyz"}}, "not found"},
		{"run_command", map[string]any{"sandbox_id": id, "command": "true", "timeout_s": -1}, "timeout_s must be positive"},
		{"execute_code", map[string]any{"sandbox_id": id, "language": "cobol", "code": "x"}, "unknown language"},
		{"get_process_output", map[string]any{"sandbox_id": id, "pid": 999}, "no process 999"},
		{"kill_process", map[string]any{"sandbox_id": id, "pid": 999}, "no process 999"},
		{"kill_process", map[string]any{"sandbox_id": id, "pid": pid.PID, "signal": "SIGNOPE"}, "want a name like SIGTERM"},
		{"extend_timeout", map[string]any{"sandbox_id": id, "timeout_s": 0}, "positive"},
	} {
		if msg := toolErr(t, cs, tt.tool, tt.args); !strings.Contains(msg, tt.want) {
			t.Errorf("%s %v: %q, want it to mention %q", tt.tool, tt.args, msg, tt.want)
		}
	}

	mcpCall(t, cs, "destroy_sandbox", map[string]any{"sandbox_id": id}, &ok)
	if !ok.Success {
		t.Errorf("destroy_sandbox = %+v", ok)
	}
	if msg := toolErr(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "true"}); !strings.Contains(msg, "unknown or destroyed sandbox") {
		t.Errorf("run_command after destroy_sandbox: %q", msg)
	}
}

// processLives reports whether pid runs (a zombie does not count).
func processLives(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(st), ") Z ")
}
