// Command servicebench measures what petty serve adds to a command: it
// starts petty serve (under the fake firecracker, whose "guest" is the real
// petty-agent on the host, so that the measure is of the service, not of a
// VMM), then compares the p50 of run_command `true` through the server, over
// MCP's streamable HTTP with the go-sdk client, with the p50 of the same
// exec through the agent client directly (attached to the same sandbox's
// VM), and measures create_sandbox → first run_command. The last line
// printed is
//
//	ratio mcp-exec/agent-exec p50=<x> create-p50-ms=<y>
//
// Usage:
//
//	go run ./cmd/servicebench [-n 300] [-creates 10]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/bench/internal/buildbin"
	"github.com/pettyvm/petty/bench/internal/stats"
	"github.com/pettyvm/petty/vm"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("servicebench: ")
	n := flag.Int("n", 300, "execs measured each way")
	creates := flag.Int("creates", 10, "create_sandbox → first run_command measured")
	flag.Parse()
	if err := run(*n, *creates); err != nil {
		log.Fatal(err)
	}
}

// bearer adds the token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func run(n, creates int) (retErr error) {
	dir, err := os.MkdirTemp("/tmp", "psb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	petty, err := buildPetty(dir)
	if err != nil {
		return err
	}
	agentBin, err := buildbin.Build(dir, "petty-agent", "github.com/pettyvm/petty/cmd/petty-agent", []string{"CGO_ENABLED=0"})
	if err != nil {
		return err
	}
	fake, err := buildbin.Build(dir, "firecracker", "github.com/pettyvm/petty/internal/fakefirecracker", nil)
	if err != nil {
		return err
	}
	kernel, rootfs := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "rootfs.ext4")
	for _, p := range []string{kernel, rootfs} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			return err
		}
	}
	runDir := filepath.Join(dir, "run")
	cmd := exec.Command(petty, "serve", "--listen", "127.0.0.1:0", "--vmm", "firecracker",
		"--firecracker-bin", fake, "--kernel", kernel, "--rootfs", rootfs)
	cmd.Env = append(os.Environ(), "PETTY_TOKEN=bench", "PETTY_RUN_DIR="+runDir,
		"FAKEFC_GUEST_CMD=exec '"+agentBin+"' --listen unix://$FAKEFC_GUEST_DIR/1024")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil && retErr == nil {
			retErr = fmt.Errorf("petty serve: %w", err)
		}
	}()
	addr := ""
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "petty serve: listening on "); ok {
			addr = strings.Fields(a)[0]
			break
		}
	}
	if addr == "" {
		return errors.New("petty serve did not start")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "servicebench", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: addr + "/mcp", HTTPClient: &http.Client{Transport: bearer{"bench"}}}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	call := func(tool string, args map[string]any) (map[string]any, error) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			return nil, err
		}
		if res.IsError {
			return nil, fmt.Errorf("%s: tool error %v", tool, res.Content)
		}
		m, _ := res.StructuredContent.(map[string]any)
		return m, nil
	}

	// create_sandbox → first run_command.
	var createMS []time.Duration
	for range creates {
		began := time.Now()
		m, err := call("create_sandbox", map[string]any{})
		if err != nil {
			return err
		}
		id := m["sandbox_id"].(string)
		if _, err := call("run_command", map[string]any{"sandbox_id": id, "command": []string{"true"}}); err != nil {
			return err
		}
		createMS = append(createMS, time.Since(began))
		if _, err := call("destroy_sandbox", map[string]any{"sandbox_id": id}); err != nil {
			return err
		}
	}

	m, err := call("create_sandbox", map[string]any{})
	if err != nil {
		return err
	}
	id := m["sandbox_id"].(string)
	at, err := vm.Attach(filepath.Join(runDir, id))
	if err != nil {
		return err
	}
	defer at.Close()
	c, err := at.Agent(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var viaMCP, direct []time.Duration
	for i := range 2 * n { // interleaved
		began := time.Now()
		if i%2 == 0 {
			if _, err := call("run_command", map[string]any{"sandbox_id": id, "command": []string{"true"}}); err != nil {
				return err
			}
			viaMCP = append(viaMCP, time.Since(began))
		} else {
			if err := c.Exec(ctx, &agent.Cmd{Args: []string{"true"}}); err != nil {
				return err
			}
			direct = append(direct, time.Since(began))
		}
	}
	p := func(s []time.Duration, q float64) float64 { return stats.Ms(stats.Percentile(s, q)) }
	fmt.Printf("run_command true via petty serve (MCP/HTTP): p50 %.3f ms  p90 %.3f ms  (n=%d)\n", p(viaMCP, 50), p(viaMCP, 90), len(viaMCP))
	fmt.Printf("exec true via the agent client:             p50 %.3f ms  p90 %.3f ms  (n=%d)\n", p(direct, 50), p(direct, 90), len(direct))
	fmt.Printf("create_sandbox -> first run_command:        p50 %.1f ms  p90 %.1f ms  (n=%d)\n", p(createMS, 50), p(createMS, 90), len(createMS))
	fmt.Printf("ratio mcp-exec/agent-exec p50=%.2f create-p50-ms=%.1f\n",
		stats.Ratio(stats.Percentile(viaMCP, 50), stats.Percentile(direct, 50)), p(createMS, 50))
	return nil
}

// buildPetty builds cmd/petty in petty's own module (its CLI dependencies
// are not the bench module's).
func buildPetty(dir string) (string, error) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/pettyvm/petty").Output()
	if err != nil {
		return "", fmt.Errorf("locating petty's module: %w", err)
	}
	path := filepath.Join(dir, "petty")
	cmd := exec.Command("go", "build", "-o", path, "./cmd/petty")
	cmd.Dir = strings.TrimSpace(string(root))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/petty: %w\n%s", err, out)
	}
	return path, nil
}
