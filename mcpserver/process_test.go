package mcpserver_test

import (
	"context"
	"os"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/mcpserver"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/sandbox/sandboxtest"
)

type processOut struct {
	Stdout   string `json:"stdout"`
	Running  bool   `json:"running"`
	ExitCode *int   `json:"exit_code"`
}

// pollProcess calls get_process_output until done says so.
func pollProcess(t *testing.T, cs *mcp.ClientSession, id string, pid int, done func(processOut) bool) processOut {
	t.Helper()
	var po processOut
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if call(t, cs, "get_process_output", map[string]any{"sandbox_id": id, "pid": pid}, &po); done(po) {
			return po
		}
	}
	t.Fatalf("get_process_output: still %+v after 10 s", po)
	return po
}

func TestKillProcessSignal(t *testing.T) {
	mgr := sandboxtest.FakeManager(t, sandbox.Config{})
	cs := session(t, mgr, nil)
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	call(t, cs, "create_sandbox", map[string]any{}, &created)
	id := created.SandboxID
	var pid struct {
		PID int `json:"pid"`
	}
	call(t, cs, "start_process", map[string]any{"sandbox_id": id, "command": `trap 'echo term; exit 4' TERM; sleep 60 & echo ready; wait`}, &pid)
	pollProcess(t, cs, id, pid.PID, func(po processOut) bool { return po.Stdout == "ready\n" })
	call(t, cs, "kill_process", map[string]any{"sandbox_id": id, "pid": pid.PID, "signal": "TERM"}, nil)
	po := pollProcess(t, cs, id, pid.PID, func(po processOut) bool { return !po.Running })
	if po.ExitCode == nil || *po.ExitCode != 4 || po.Stdout != "ready\nterm\n" {
		t.Errorf("after SIGTERM: %+v, want the trap's exit 4", po)
	}
	for _, tt := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"sandbox_id": id, "pid": pid.PID, "signal": "SIGNOPE"}, "want a name like SIGTERM"},
		{map[string]any{"sandbox_id": id, "pid": pid.PID, "signal": "15"}, "already ended"},
		{map[string]any{"sandbox_id": id, "pid": 999}, "no process 999"},
		{map[string]any{"sandbox_id": "nope", "pid": 1}, "unknown or destroyed sandbox"},
	} {
		if msg := callErr(t, cs, "kill_process", tt.args); !strings.Contains(msg, tt.want) {
			t.Errorf("kill_process %v: %q, want %q", tt.args, msg, tt.want)
		}
	}
	// SIGKILL (the default) of a process that ended is a success.
	call(t, cs, "kill_process", map[string]any{"sandbox_id": id, "pid": pid.PID}, nil)
	// A background command that is not found is a tool error at once.
	if msg := callErr(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": []string{"no-such-program-xyz"}, "background": true}); !strings.Contains(msg, "not found") {
		t.Errorf("background missing command: %q", msg)
	}
}

func TestRunAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("running as another user needs root on the host (the fake's guest)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody on the host")
	}
	mgr := sandboxtest.FakeManager(t, sandbox.Config{})
	cs := session(t, mgr, nil)
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	call(t, cs, "create_sandbox", map[string]any{}, &created)
	id := created.SandboxID
	var out execOut
	call(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "id -u", "user": "nobody", "cwd": "/"}, &out)
	if strings.TrimSpace(out.Stdout) != u.Uid {
		t.Errorf("run_command as nobody: %+v", out)
	}
	call(t, cs, "execute_code", map[string]any{"sandbox_id": id, "language": "sh", "code": "id -u", "user": "nobody", "cwd": "/"}, &out)
	if strings.TrimSpace(out.Stdout) != u.Uid {
		t.Errorf("execute_code as nobody: %+v", out)
	}
	if msg := callErr(t, cs, "run_command", map[string]any{"sandbox_id": id, "command": "true", "user": "petty-no-such-user"}); !strings.Contains(msg, "unknown user") {
		t.Errorf("unknown user: %q", msg)
	}
}

// TestSessionEndDestroysSandboxes: the sandboxes a session created are
// destroyed when it ends; another session's stay.
func TestSessionEndDestroysSandboxes(t *testing.T) {
	mgr := sandboxtest.FakeManager(t, sandbox.Config{})
	srv := mcpserver.New(mgr, mcpserver.Options{})
	connect := func() *mcp.ClientSession {
		st, ct := mcp.NewInMemoryTransports()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Run(ctx, st) }()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(t.Context(), ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close(); cancel(); <-done })
		return cs
	}
	a, b := connect(), connect()
	create := func(cs *mcp.ClientSession) string {
		var created struct {
			SandboxID string `json:"sandbox_id"`
		}
		call(t, cs, "create_sandbox", map[string]any{}, &created)
		return created.SandboxID
	}
	a1, a2, b1 := create(a), create(a), create(b)
	call(t, a, "destroy_sandbox", map[string]any{"sandbox_id": a2}, nil)
	sbA, err := mgr.Get(a1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sbA.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the closed session's sandbox is still alive after 30 s")
	}
	if _, err := mgr.Get(b1); err != nil || mgr.Len() != 1 {
		t.Errorf("the other session's sandbox: %v (%d alive)", err, mgr.Len())
	}
	var out execOut
	call(t, b, "run_command", map[string]any{"sandbox_id": b1, "command": "echo still here"}, &out)
	if out.Stdout != "still here\n" {
		t.Errorf("run_command in the other session: %+v", out)
	}
}
