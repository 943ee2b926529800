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

	"github.com/pettyvm/petty/internal/testutil"
)

// poolServer is a petty serve --pool on a unix socket, with an MCP
// session on it.
type poolServer struct {
	cmd     *exec.Cmd
	sock    string
	cs      *mcp.ClientSession
	stopped bool
}

// startPoolServe starts "petty serve --vmm qemu --listen unix://... flags"
// and waits (4 minutes at most) for its "pool ready: <want>" line.
func startPoolServe(t *testing.T, h *harness, want string, flags ...string) *poolServer {
	t.Helper()
	ps := &poolServer{sock: filepath.Join(filepath.Dir(h.runDir), "serve.sock")}
	args := append([]string{"serve", "--vmm", "qemu", "--boot-timeout", "2m", "--listen", "unix://" + ps.sock}, flags...)
	ps.cmd = exec.Command(h.petty, args...)
	ps.cmd.Env = append(append([]string(nil), h.env...), "PETTY_TOKEN=pool-token")
	stderr, err := ps.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !ps.stopped {
			_ = ps.cmd.Process.Kill()
			_ = ps.cmd.Wait()
		}
	})
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
	select {
	case line := <-ready:
		if line != "petty serve: pool ready: "+want {
			t.Fatalf("pool not ready: %q\n%s", line, log.String())
		}
	case <-time.After(4 * time.Minute):
		t.Fatal("the pool did not fill within 4 minutes")
	}
	hc := &http.Client{Transport: bearer{"pool-token", &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ps.sock)
		},
	}}}
	ps.cs, err = mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: "http://petty/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// stop sends SIGTERM and checks that the socket is gone (the harness's
// cleanups check the QEMUs and the run directory).
func (ps *poolServer) stop(t *testing.T) {
	t.Helper()
	ps.cs.Close()
	ps.stopped = true
	stopServe(t, ps.cmd)
	if _, err := os.Lstat(ps.sock); err == nil {
		t.Errorf("the socket %s is left", ps.sock)
	}
}

// create calls create_sandbox and returns the id.
func (ps *poolServer) create(t *testing.T) string {
	t.Helper()
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	began := time.Now()
	mcpCall(t, ps.cs, "create_sandbox", map[string]any{}, &created)
	t.Logf("create_sandbox over MCP: %v", time.Since(began))
	return created.SandboxID
}

// sh runs script in sandbox id and returns its stdout.
func (ps *poolServer) sh(t *testing.T, id, script string) string {
	t.Helper()
	var out struct {
		Stdout   string `json:"stdout"`
		ExitCode int    `json:"exit_code"`
	}
	mcpCall(t, ps.cs, "run_command", map[string]any{"sandbox_id": id, "command": script}, &out)
	return out.Stdout
}

// TestQEMUServePool: petty serve --pool 2 keeps two real guests ready,
// unlisted; create_sandbox hands one out; SIGTERM leaves no QEMU, run
// directory or socket (checkClean, checkNoQEMU).
func TestQEMUServePool(t *testing.T) {
	h := newQEMUHarness(t)
	ps := startPoolServe(t, h, "2 sandboxes", append([]string{"--pool", "2"}, qemuFlags...)...)
	if pids := qemuProcs(t, h.runDir); len(pids) != 2 {
		t.Errorf("want the two pooled QEMUs, got %v", pids)
	}
	var list struct {
		Sandboxes []map[string]any `json:"sandboxes"`
	}
	mcpCall(t, ps.cs, "list_sandboxes", map[string]any{}, &list)
	if len(list.Sandboxes) != 0 {
		t.Errorf("pooled sandboxes are listed: %v", list.Sandboxes)
	}
	id := ps.create(t)
	if out := ps.sh(t, id, "uname -s"); out != "Linux\n" {
		t.Errorf("uname -s = %q", out)
	}
	mcpCall(t, ps.cs, "list_sandboxes", map[string]any{}, &list)
	if len(list.Sandboxes) != 1 {
		t.Errorf("list_sandboxes: %v, want the one created", list.Sandboxes)
	}
	ps.stop(t)
}

// TestQEMUServePoolDebian: the same with the Debian image (a read-only base
// below each sandbox's scratch disk): pooled clones of its template run
// its tools, and one clone's writes are not in the next.
func TestQEMUServePoolDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the Debian image (minutes the first time)")
	}
	h := newQEMUHarness(t)
	img := testutil.DebianImage(t)
	ps := startPoolServe(t, h, "1 sandboxes", "--pool", "1", "--image", img.Dir, "--memory", "512", "--vcpus", "1")
	a := ps.create(t)
	if out := ps.sh(t, a, "python3 -c 'print(6*7)' && echo a > /root/mark && cat /root/mark"); out != "42\na\n" {
		t.Errorf("in the first clone: %q", out)
	}
	b := ps.create(t)
	if out := ps.sh(t, b, "cat /root/mark 2>/dev/null || echo none; uname -n"); !strings.HasPrefix(out, "none\npetty-") {
		t.Errorf("in the second clone: %q (want no mark, a host name of its own)", out)
	}
	ps.stop(t)
}
