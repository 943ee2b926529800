package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
)

// dialMuxSocket connects to m's agent the way another process does: through
// the run directory's mux socket, with the token file's token.
func dialMuxSocket(t *testing.T, m *Machine, token string) (*agent.Client, error) {
	t.Helper()
	conn, err := net.Dial("unix", filepath.Join(m.RunDir(), AgentMuxSocket))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := agent.Authenticate(ctx, conn, token); err != nil {
		return nil, err
	}
	return agent.NewClient(conn), nil
}

// TestQEMUSerialChannel boots a guest whose agent channel is virtio-serial
// and checks that any number of agent clients, in this process and through
// the mux socket, run calls at once; that the per-boot token stays off
// QEMU's argv while the guest sees it; and that power-off through the agent
// still works.
func TestQEMUSerialChannel(t *testing.T) {
	cfg := qemuConfig(t)
	m, c1 := startQEMU(t, cfg)
	m.mu.Lock()
	be := m.be
	m.mu.Unlock()
	if q, ok := be.(*qemuBackend); !ok || q.spec.VsockCID != 0 {
		t.Fatal("want a serial agent channel")
	}
	ctx := t.Context()

	// The token: in the run directory (0600), on the guest's kernel command
	// line, never on QEMU's.
	tok, err := ReadAgentToken(m.RunDir())
	if err != nil {
		t.Fatal(err)
	}
	argv, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(m.PID()), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(argv, []byte(tok)) || bytes.Contains(argv, []byte("petty.token")) {
		t.Errorf("QEMU's /proc/PID/cmdline holds the token: %q", argv)
	}
	if guest := run(t, c1, "cat", "/proc/cmdline"); !strings.Contains(guest, "petty.token="+tok) {
		t.Errorf("guest's /proc/cmdline %q lacks the boot's token", guest)
	}
	for _, name := range []string{AgentTokenFile, qemuConfigName, AgentMuxSocket} {
		fi, err := os.Stat(filepath.Join(m.RunDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	if _, err := dialMuxSocket(t, m, "0123456789abcdef0123456789abcdef"); !errors.Is(err, agent.ErrAuth) {
		t.Errorf("mux socket with a wrong token: %v, want ErrAuth", err)
	}

	// Concurrency: the same command alone, then on three clients at once.
	c2 := waitAgent(t, m)
	c3, err := dialMuxSocket(t, m, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	const cmd = "sleep 1; echo done"
	began := time.Now()
	if out := run(t, c1, "sh", "-c", cmd); out != "done\n" {
		t.Fatalf("alone: %q", out)
	}
	alone := time.Since(began)
	began = time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, c := range []*agent.Client{c1, c2, c3} {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			out, err := c.Output(cctx, "sh", "-c", cmd)
			if err == nil && string(out) != "done\n" {
				err = fmt.Errorf("output %q", out)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	together := time.Since(began)
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i+1, err)
		}
	}
	t.Logf("one command alone: %v; three on three clients at once: %v", alone.Round(time.Millisecond), together.Round(time.Millisecond))
	if together > alone*3/2 {
		t.Errorf("three concurrent commands took %v, one alone %v: not concurrent", together, alone)
	}

	// Power-off goes through the agent (its log says so on the console)
	// while the clients stay connected.
	shutdown(t, m)
	if !bytes.Contains(m.ConsoleTail(), []byte("shutdown requested")) {
		t.Errorf("the guest did not power off through its agent; console:\n%s", m.ConsoleTail())
	}
	if _, err := os.Lstat(filepath.Join(m.RunDir(), AgentMuxSocket)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after the VMM exited (err=%v)", AgentMuxSocket, err)
	}
	if _, err := c3.Ping(ctx); err == nil {
		t.Error("a mux client still answers after power-off")
	}
}
