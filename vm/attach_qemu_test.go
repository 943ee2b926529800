package vm

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
)

// TestAttachQEMU attaches to a QEMU guest whose agent channel is the
// virtio-serial port: Agent runs a command, and Shutdown powers the guest
// off through the agent (no SIGTERM, no SIGKILL needed).
func TestAttachQEMU(t *testing.T) {
	cfg := qemuConfig(t)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, m) })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c, err := m.Agent(ctx)
	if err != nil {
		t.Fatalf("Agent: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	c.Close() // the serial channel serves one client at a time

	a, err := Attach(m.RunDir())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer a.Close()
	if a.VMM() != QEMU || a.PID() != m.PID() || a.State() != Running {
		t.Fatalf("attached: vmm %s pid %d state %v, want qemu %d running", a.VMM(), a.PID(), a.State(), m.PID())
	}
	ac, err := a.Agent(ctx)
	if err != nil {
		t.Fatalf("attached Agent: %v", err)
	}
	var out bytes.Buffer
	err = ac.Exec(ctx, &agent.Cmd{Args: []string{"echo", "attached"}, Stdout: &out})
	ac.Close()
	if err != nil || out.String() != "attached\n" {
		t.Fatalf("Exec = %v, output %q", err, out.String())
	}
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	began := time.Now()
	if err := a.Shutdown(sctx); err != nil {
		t.Fatalf("attached Shutdown: %v", err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Errorf("the owner's Wait after a graceful power-off: %v", err)
	}
	t.Logf("attached graceful shutdown: %v", time.Since(began).Round(time.Millisecond))
	if a.State() != Stopped {
		t.Errorf("state %v after Shutdown", a.State())
	}
}
