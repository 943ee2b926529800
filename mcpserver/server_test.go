package mcpserver_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/mcpserver"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/sandbox/sandboxtest"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// session connects a go-sdk client to a server over in-memory transports.
func session(t *testing.T, mgr *sandbox.Manager, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	srv := mcpserver.New(mgr, mcpserver.Options{ProgressInterval: 100 * time.Millisecond})
	st, ct := mcp.NewInMemoryTransports()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(ctx, st) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts).Connect(t.Context(), ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); cancel(); <-done })
	return cs
}

// call calls tool and decodes its structured result into out (a map when
// nil); it returns the result.
func call(t *testing.T, cs *mcp.ClientSession, tool string, args any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", tool, text(res))
	}
	if out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		// The text block carries the same JSON.
		var fromText any
		if err := json.Unmarshal([]byte(text(res)), &fromText); err != nil {
			t.Errorf("%s: text block is not JSON: %v", tool, err)
		}
	}
	return res
}

// callErr calls tool and returns its tool error's text ("" if none).
func callErr(t *testing.T, cs *mcp.ClientSession, tool string, args any) string {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", tool, err)
	}
	if !res.IsError {
		t.Errorf("%s(%v): no tool error", tool, args)
		return ""
	}
	return text(res)
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

type execOut struct {
	ExitCode  *int   `json:"exit_code"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	Truncated bool   `json:"truncated"`
	TimedOut  bool   `json:"timed_out"`
	PID       *int   `json:"pid"`
}

func TestTools(t *testing.T) {
	mgr := sandboxtest.FakeManager(t, sandbox.Config{})
	var mu sync.Mutex
	var progress []string
	cs := session(t, mgr, &mcp.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress = append(progress, r.Params.Message)
		mu.Unlock()
	}})

	tools, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	for _, n := range []string{"create_sandbox", "destroy_sandbox", "list_sandboxes", "run_command", "execute_code",
		"read_file", "write_file", "list_directory", "get_process_output", "kill_process",
		"start_process", "extend_timeout"} {
		if !names[n] {
			t.Errorf("tool %s missing", n)
		}
	}

	params := &mcp.CallToolParams{Name: "create_sandbox", Arguments: map[string]any{"env": map[string]string{"FOO": "bar"}}}
	params.SetProgressToken("create-1")
	res, err := cs.CallTool(t.Context(), params)
	if err != nil || res.IsError {
		t.Fatalf("create_sandbox: %v %s", err, text(res))
	}
	var created struct {
		SandboxID string `json:"sandbox_id"`
		MemoryMiB int    `json:"memory_mib"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &created)
	id := created.SandboxID
	if id == "" || created.MemoryMiB != 256 {
		t.Fatalf("create_sandbox = %s", b)
	}
	mu.Lock()
	if len(progress) == 0 {
		t.Error("no progress notification for create_sandbox with a progress token")
	}
	mu.Unlock()

	var list struct {
		Sandboxes []map[string]any `json:"sandboxes"`
	}
	call(t, cs, "list_sandboxes", map[string]any{}, &list)
	if len(list.Sandboxes) != 1 || list.Sandboxes[0]["sandbox_id"] != id || list.Sandboxes[0]["state"] != "running" {
		t.Errorf("list_sandboxes = %v", list)
	}

	var out execOut
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": `echo hi $FOO; echo err >&2; exit 3`}, &out)
	if out.ExitCode == nil || *out.ExitCode != 3 || out.Stdout != "hi bar\n" || out.Stderr != "err\n" || out.Truncated || out.TimedOut {
		t.Errorf("run_command = %+v", out)
	}
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": []string{"echo", "$FOO", "a b"}, "cwd": "/", "stdin": "x"}, &out)
	if out.Stdout != "$FOO a b\n" {
		t.Errorf("exec argv = %+v", out)
	}
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": []string{"cat"}, "stdin": "from stdin"}, &out)
	if out.Stdout != "from stdin" {
		t.Errorf("exec stdin = %+v", out)
	}
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "sleep 30", "timeout_s": 1}, &out)
	if !out.TimedOut {
		t.Errorf("timed out run = %+v", out)
	}
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "head -c 50000000 /dev/zero"}, &out)
	if !out.Truncated || len(out.Stdout) > mcpserver.MaxRawOutput {
		t.Errorf("50 MB output: truncated %v, %d bytes", out.Truncated, len(out.Stdout))
	}
	call(t, cs, "execute_code", map[string]any{"sandbox_id": id, "language": "bash", "code": "echo code $((6*7))"}, &out)
	if out.Stdout != "code 42\n" {
		t.Errorf("run_code = %+v", out)
	}

	dir := t.TempDir() // the fake's guest is the host
	p := filepath.Join(dir, "d/e/f.bin")
	bin := []byte{0, 1, 2, 0xff, 'x'}
	var wr struct {
		Success bool  `json:"success"`
		Size    int64 `json:"size"`
	}
	call(t, cs, "write_file", map[string]any{"sandbox_id": id, "path": p, "content": base64.StdEncoding.EncodeToString(bin), "encoding": "base64", "mode": "0600"}, &wr)
	if !wr.Success || wr.Size != 5 {
		t.Errorf("write_file = %+v", wr)
	}
	var rd struct {
		Content  string `json:"content"`
		Encoding string `json:"encoding"`
		Size     int64  `json:"size"`
	}
	call(t, cs, "read_file", map[string]any{"sandbox_id": id, "path": p, "encoding": "base64"}, &rd)
	if got, _ := base64.StdEncoding.DecodeString(rd.Content); string(got) != string(bin) || rd.Size != 5 {
		t.Errorf("read_file base64 = %+v", rd)
	}
	if msg := callErr(t, cs, "read_file", map[string]any{"sandbox_id": id, "path": p}); !strings.Contains(msg, "base64") {
		t.Errorf("binary read as utf-8: %q", msg)
	}
	call(t, cs, "write_file", map[string]any{"sandbox_id": id, "path": filepath.Join(dir, "t.txt"), "content": "héllo\n"}, &wr)
	call(t, cs, "read_file", map[string]any{"sandbox_id": id, "path": filepath.Join(dir, "t.txt")}, &rd)
	if rd.Content != "héllo\n" || rd.Encoding != "utf-8" {
		t.Errorf("read_file = %+v", rd)
	}
	var ls struct {
		Entries []struct {
			Name  string `json:"name"`
			IsDir bool   `json:"is_dir"`
			Size  int64  `json:"size"`
		} `json:"entries"`
	}
	call(t, cs, "list_directory", map[string]any{"sandbox_id": id, "path": dir}, &ls)
	if len(ls.Entries) != 2 || ls.Entries[0].Name != "d" || !ls.Entries[0].IsDir || ls.Entries[1].Size != 7 {
		t.Errorf("list_directory = %+v", ls)
	}

	var pid struct {
		PID int `json:"pid"`
	}
	call(t, cs, "start_process", map[string]any{"sandbox_id": id, "command": []string{"sh", "-c", "echo started; exec sleep 60"}}, &pid)
	var po struct {
		Stdout   string `json:"stdout"`
		Running  bool   `json:"running"`
		ExitCode *int   `json:"exit_code"`
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if call(t, cs, "get_process_output", map[string]any{"sandbox_id": id, "pid": pid.PID}, &po); po.Stdout != "" {
			break
		}
	}
	if po.Stdout != "started\n" || !po.Running {
		t.Errorf("get_process_output = %+v", po)
	}
	call(t, cs, "kill_process", map[string]any{"sandbox_id": id, "pid": pid.PID}, nil)
	call(t, cs, "get_process_output", map[string]any{"sandbox_id": id, "pid": pid.PID}, &po)
	if po.Running {
		t.Errorf("after kill_process: %+v", po)
	}
	var bg execOut
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "echo bg", "background": true}, &bg)
	if bg.PID == nil || bg.ExitCode != nil {
		t.Errorf("background run_command = %+v", bg)
	}
	call(t, cs, "extend_timeout", map[string]any{"sandbox_id": id, "timeout_s": 3600}, nil)

	// Tool errors.
	for _, tt := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"run_command", map[string]any{"sandbox_id": "nope", "command": "true"}, "unknown or destroyed sandbox"},
		{"create_sandbox", map[string]any{"memory_mib": 64}, "below the minimum"},
		{"read_file", map[string]any{"sandbox_id": id, "path": filepath.Join(dir, "missing")}, "no such file"},
		{"execute_code", map[string]any{"sandbox_id": id, "language": "cobol", "code": "x"}, "unknown language"},
		{"get_process_output", map[string]any{"sandbox_id": id, "pid": 999}, "no process 999"},
		{"run_command", map[string]any{"sandbox_id": id}, "command is required"},
		{"run_command", map[string]any{"sandbox_id": id, "command": []string{"no-such-program-xyz"}}, "not found"},
		{"write_file", map[string]any{"sandbox_id": id, "path": p, "content": "!!", "encoding": "base64"}, "base64"},
	} {
		if msg := callErr(t, cs, tt.tool, tt.args); !strings.Contains(msg, tt.want) {
			t.Errorf("%s %v: error %q, want it to mention %q", tt.tool, tt.args, msg, tt.want)
		}
	}

	var ok struct {
		Success bool `json:"success"`
	}
	call(t, cs, "destroy_sandbox", map[string]any{"sandbox_id": id}, &ok)
	if !ok.Success || mgr.Len() != 0 {
		t.Errorf("destroy_sandbox = %+v, %d left", ok, mgr.Len())
	}
	if msg := callErr(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "true"}); !strings.Contains(msg, "unknown or destroyed") {
		t.Errorf("after destroy: %q", msg)
	}
}

func TestConcurrentAndCancel(t *testing.T) {
	mgr := sandboxtest.FakeManager(t, sandbox.Config{})
	cs := session(t, mgr, nil)
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	call(t, cs, "create_sandbox", map[string]any{}, &created)
	id := created.SandboxID

	began := time.Now()
	var wg sync.WaitGroup
	for _, d := range []string{"1", "1.5"} {
		wg.Go(func() {
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "run_command", Arguments: map[string]any{"sandbox_id": id, "command": []string{"sleep", d}}})
			if err != nil || res.IsError {
				t.Errorf("sleep %s: %v", d, err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(began); el > 2400*time.Millisecond {
		t.Errorf("two calls took %v: not concurrent", el)
	}

	// A cancelled call kills the guest command.
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "run_command", Arguments: map[string]any{"sandbox_id": id, "command": []string{"sh", "-c", `echo $$ > "$0"; exec sleep 60`, pidFile}}})
		errc <- err
	}()
	pid := waitPIDFile(t, pidFile)
	cancel()
	<-errc
	waitGone(t, pid)
}

// TestEncodedSizeBounded checks that the worst output for JSON (NUL bytes,
// escaped to 6 bytes, then 7 in the text block) stays well under the
// 10 MiB at which clients drop a stdio connection, as encoded.
func TestEncodedSizeBounded(t *testing.T) {
	mgr := sandboxtest.FakeManager(t, sandbox.Config{})
	var mu sync.Mutex
	progress := 0
	cs := session(t, mgr, &mcp.ClientOptions{ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) {
		mu.Lock()
		progress++
		mu.Unlock()
	}})
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	call(t, cs, "create_sandbox", map[string]any{}, &created)
	for _, cmd := range []string{
		"head -c 1048576 /dev/zero",
		"head -c 1048576 /dev/zero >&2",
		"head -c 5000000 /dev/urandom",
		"head -c 700000 /dev/zero; head -c 700000 /dev/zero >&2",
	} {
		res := call(t, cs, "run_command", map[string]any{"sandbox_id": created.SandboxID, "command": cmd}, nil)
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 5<<20 {
			t.Errorf("%s: result encodes to %d bytes, over 5 MiB", cmd, len(b))
		}
		if tr, _ := res.StructuredContent.(map[string]any)["truncated"].(bool); !tr {
			t.Errorf("%s: truncated not set (%d bytes)", cmd, len(b))
		}
		t.Logf("%s: %d bytes encoded", cmd, len(b))
	}
	// A long command sends progress when asked.
	p := &mcp.CallToolParams{Name: "run_command", Arguments: map[string]any{"sandbox_id": created.SandboxID, "command": "sleep 0.5"}}
	p.SetProgressToken(7)
	if _, err := cs.CallTool(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if progress == 0 {
		t.Error("no progress during a 0.5 s command with a 100 ms interval")
	}
}
