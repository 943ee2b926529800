package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestQEMUServePool: petty serve --pool 2 keeps two real guests ready,
// unlisted; create_sandbox hands one out; SIGTERM leaves no QEMU, run
// directory or socket (checkClean, checkNoQEMU).
func TestQEMUServePool(t *testing.T) {
	h := newQEMUHarness(t)
	sock := filepath.Join(filepath.Dir(h.runDir), "serve.sock")
	args := append([]string{"serve", "--vmm", "qemu", "--boot-timeout", "2m", "--pool", "2", "--listen", "unix://" + sock}, qemuFlags...)
	cmd := exec.Command(h.petty, args...)
	cmd.Env = append(append([]string(nil), h.env...), "PETTY_TOKEN=pool-token")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1) // the pool-ready line, or "" at EOF
	var log strings.Builder       // read after ready
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			if !found {
				log.WriteString(sc.Text() + "\n")
			}
			if strings.HasPrefix(sc.Text(), "petty serve: pool ready: ") && !found {
				found = true
				ready <- sc.Text()
			}
		}
		if !found {
			ready <- ""
		}
	}()
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	select {
	case line := <-ready:
		if line != "petty serve: pool ready: 2 sandboxes" {
			t.Fatalf("pool not ready: %q\n%s", line, log.String())
		}
	case <-time.After(4 * time.Minute):
		t.Fatal("the pool did not fill within 4 minutes")
	}
	if pids := qemuProcs(t, h.runDir); len(pids) != 2 {
		t.Errorf("want the two pooled QEMUs, got %v", pids)
	}
	hc := &http.Client{Transport: bearer{"pool-token", &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: "http://petty/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var list struct {
		Sandboxes []map[string]any `json:"sandboxes"`
	}
	mcpCall(t, cs, "list_sandboxes", map[string]any{}, &list)
	if len(list.Sandboxes) != 0 {
		t.Errorf("pooled sandboxes are listed: %v", list.Sandboxes)
	}
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	began := time.Now()
	mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
	t.Logf("create_sandbox from the pool over MCP: %v", time.Since(began))
	var out struct {
		Stdout string `json:"stdout"`
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": created.SandboxID, "command": []string{"uname", "-s"}}, &out)
	if out.Stdout != "Linux\n" {
		t.Errorf("uname -s = %+v", out)
	}
	mcpCall(t, cs, "list_sandboxes", map[string]any{}, &list)
	if len(list.Sandboxes) != 1 {
		t.Errorf("list_sandboxes: %v, want the one created", list.Sandboxes)
	}
	cs.Close()
	stopped = true
	stopServe(t, cmd)
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("the socket %s is left", sock)
	}
}
