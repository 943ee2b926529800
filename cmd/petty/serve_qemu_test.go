package main

import (
	"net/http"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestQEMUServe drives petty serve over HTTP through a real QEMU/TCG
// guest: a request without the token is refused, the tools work with it,
// and SIGTERM leaves no QEMU or run directory behind (checkClean).
func TestQEMUServe(t *testing.T) {
	h := newQEMUHarness(t)
	flags := append([]string{"--vmm", "qemu", "--boot-timeout", "2m"}, qemuFlags...)
	cmd, addr, log := h.startServeVM(flags, []string{"PETTY_TOKEN=qemu-token"}, "--listen", "127.0.0.1:0")
	if addr == "" {
		t.Fatalf("no address:\n%s", log)
	}
	resp, err := http.Post(addr+"/mcp", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /mcp without the token: %d", resp.StatusCode)
	}
	hc := &http.Client{Transport: bearer{"qemu-token", http.DefaultTransport}}
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
	var out struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	mcpCall(t, cs, "run_command", map[string]any{"sandbox_id": created.SandboxID, "command": []string{"uname", "-s"}}, &out)
	if out.Stdout != "Linux\n" {
		t.Errorf("uname -s = %+v", out)
	}
	if len(qemuProcs(t, h.runDir)) != 1 {
		t.Errorf("want one QEMU, got %v", qemuProcs(t, h.runDir))
	}
	stopServe(t, cmd)
	if pids := qemuProcs(t, h.runDir); len(pids) > 0 {
		t.Errorf("QEMU left after SIGTERM: %v", pids)
	}
}
