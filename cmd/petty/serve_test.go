package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/internal/testutil"
)

// startServe starts "petty serve <fake flags> args..." with env extra and
// returns the process and the address it printed ("" if it exited first)
// along with everything it wrote to stderr so far.
func (h *harness) startServe(env []string, args ...string) (*exec.Cmd, string, *strings.Builder) {
	h.t.Helper()
	return h.startServeVM(h.vmFlags(), env, args...)
}

// startServeVM is startServe with the VM flags vmFlags.
func (h *harness) startServeVM(vmFlags, env []string, args ...string) (*exec.Cmd, string, *strings.Builder) {
	h.t.Helper()
	cmd := exec.Command(h.petty, append(append([]string{"serve"}, vmFlags...), args...)...)
	cmd.Env = append(append([]string(nil), h.env...), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	var log strings.Builder
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			line := sc.Text()
			log.WriteString(line + "\n")
			if a, ok := strings.CutPrefix(line, "petty serve: listening on "); ok && !found {
				found = true
				addr <- strings.Fields(a)[0]
			}
		}
		if !found {
			addr <- ""
		}
	}()
	select {
	case a := <-addr:
		return cmd, a, &log
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		h.t.Fatalf("petty serve did not start:\n%s", log.String())
		return nil, "", nil
	}
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// stopServe sends SIGTERM and checks that petty serve exits 0 within 30 s.
func stopServe(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("petty serve after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Error("petty serve did not exit within 30 s of SIGTERM")
	}
}

func TestServeHTTP(t *testing.T) {
	h := newHarness(t)
	cmd, addr, log := h.startServe([]string{"PETTY_TOKEN=s3cret"}, "--listen", "127.0.0.1:0")
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	// Every request without the token gets 401.
	for _, path := range []string{"/healthz", "/metrics", "/mcp"} {
		resp, err := http.Get(addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", path, resp.StatusCode)
		}
	}
	hc := &http.Client{Transport: bearer{"s3cret", http.DefaultTransport}}
	resp, err := hc.Get(addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with the token: %v %v", resp, err)
	}
	resp.Body.Close()

	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: addr + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
	var out struct {
		Stdout string `json:"stdout"`
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": created.SandboxID, "command": "echo over http"}, &out)
	if out.Stdout != "over http\n" {
		t.Errorf("run_command = %+v", out)
	}
	pid := h.vmmPID(created.SandboxID)

	resp, err = hc.Get(addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"petty_sandboxes 1\n", "petty_sandbox_creates_total 1\n", "petty_exec_duration_seconds_count 1\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	_ = cs.Close()
	stopServe(t, cmd)
	waitExit(t, pid)
}

func TestServeUnixSocket(t *testing.T) {
	h := newHarness(t)
	sock := filepath.Join(testutil.ShortTempDir(t), "petty.sock")
	cmd, addr, log := h.startServe([]string{"PETTY_TOKEN=tok"}, "--listen", "unix://"+sock)
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket %v %v, want a 0600 socket", fi.Mode(), err)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: bearer{"tok", tr}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: "http://localhost/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
	pid := h.vmmPID(created.SandboxID)
	// SIGTERM with a session still open: every sandbox goes, then petty.
	stopServe(t, cmd)
	_ = cs.Close()
	waitExit(t, pid)
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestServeRefusesBeyondLoopbackWithoutToken(t *testing.T) {
	h := newHarness(t)
	r := h.run(nil, append(append([]string{"serve"}, h.vmFlags()...), "--listen", "0.0.0.0:0")...)
	if r.code == 0 || !strings.Contains(r.stderr, "refusing to listen beyond loopback without a token") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestServeGeneratedToken(t *testing.T) {
	h := newHarness(t)
	cmd, addr, log := h.startServe(nil, "--listen", "127.0.0.1:0")
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	_, path, ok := strings.Cut(log.String(), "generated a bearer token in ")
	path, _, _ = strings.Cut(path, "\n")
	if !ok || path == "" {
		t.Fatalf("no token path logged:\n%s", log)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v %v, want 0600", path, fi, err)
	}
	tok, _ := os.ReadFile(path)
	hc := &http.Client{Transport: bearer{strings.TrimSpace(string(tok)), http.DefaultTransport}}
	resp, err := hc.Get(addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz with the generated token: %v %v", resp, err)
	}
	resp.Body.Close()
	stopServe(t, cmd)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("generated token left behind: %v", err)
	}
}

// TestServeSessionTimeout: an HTTP session idle for --session-timeout ends,
// and its sandboxes are destroyed with it.
func TestServeSessionTimeout(t *testing.T) {
	h := newHarness(t)
	cmd, addr, log := h.startServe([]string{"PETTY_TOKEN=idle"}, "--listen", "127.0.0.1:0", "--session-timeout", "1s")
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	defer stopServe(t, cmd)
	hc := &http.Client{Transport: bearer{"idle", http.DefaultTransport}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).
		Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: addr + "/mcp", HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var created struct {
		SandboxID string `json:"sandbox_id"`
	}
	mcpCall(t, cs, "create_sandbox", map[string]any{}, &created)
	waitExit(t, h.vmmPID(created.SandboxID)) // within 10 s
}
