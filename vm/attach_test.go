package vm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// attachTo creates a Machine on the fake firecracker (the real agent as its
// guest) and attaches to it through its run directory.
func attachTo(t *testing.T) (*vm.Machine, *vm.Attached) {
	t.Helper()
	withAgentGuest(t)
	m, err := vm.Create(t.Context(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy(context.Background()) })
	a, err := vm.Attach(m.RunDir())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return m, a
}

func TestAttach(t *testing.T) {
	m, a := attachTo(t)
	if a.ID() != m.ID() || a.PID() != m.PID() || a.VMM() != vm.Firecracker || a.State() != vm.Running || !a.OwnerAlive() {
		t.Fatalf("attached: id %s pid %d vmm %s state %v owner alive %v; machine id %s pid %d",
			a.ID(), a.PID(), a.VMM(), a.State(), a.OwnerAlive(), m.ID(), m.PID())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := a.Agent(ctx)
	if err != nil {
		t.Fatalf("Agent: %v", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	c.Close()

	// Wait does not return while the VMM runs.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer wcancel()
	if err := a.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a running VM = %v, want DeadlineExceeded", err)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := a.Wait(ctx); err != nil {
		t.Errorf("Wait after Shutdown: %v", err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Logf("owner's Wait: %v", err) // stopped by Ctrl-Alt-Del: exit 0 or not, it is gone
	}
	if a.State() != vm.Stopped || a.PID() != 0 {
		t.Errorf("after Shutdown: state %v pid %d", a.State(), a.PID())
	}
	if _, err := a.Agent(ctx); !errors.Is(err, vm.ErrNotRunning) {
		t.Errorf("Agent after Shutdown = %v, want ErrNotRunning", err)
	}
	if err := a.Kill(); err != nil {
		t.Errorf("Kill of a stopped VM = %v", err)
	}
}

// TestAttachShutdownEscalates: a guest that ignores Ctrl-Alt-Del and a VMM
// that ignores SIGTERM are killed at the deadline, and Shutdown returns by
// then.
func TestAttachShutdownEscalates(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr error
	}{
		{"ctrl-alt-del ignored", map[string]string{"FAKEFC_IGNORE_CTRLALTDEL": "1"}, nil},
		{"sigterm ignored too", map[string]string{"FAKEFC_IGNORE_CTRLALTDEL": "1", "FAKEFC_IGNORE_SIGTERM": "1"}, vm.ErrKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			m, a := attachTo(t)
			const timeout = 800 * time.Millisecond
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			begin := time.Now()
			err := a.Shutdown(ctx)
			took := time.Since(begin)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Shutdown = %v, want %v", err, tt.wantErr)
			}
			if took > timeout+100*time.Millisecond {
				t.Errorf("Shutdown returned after %v, deadline was %v", took, timeout)
			}
			if err := m.Wait(t.Context()); err == nil && tt.wantErr != nil {
				t.Errorf("VMM exited 0 after SIGKILL")
			}
		})
	}
}

func TestAttachKill(t *testing.T) {
	m, a := attachTo(t)
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	var ee *vm.ExitError
	if err := m.Wait(t.Context()); !errors.As(err, &ee) {
		t.Fatalf("owner's Wait = %v, want an *ExitError", err)
	}
	if a.State() != vm.Stopped {
		t.Errorf("state %v after Kill", a.State())
	}
}

func TestAttachRefuses(t *testing.T) {
	m, a := attachTo(t)
	a.Close()
	tests := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"relative path", func(t *testing.T) string { return filepath.Base(m.RunDir()) }},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "0123456789abcdef") }},
		{"symlink to the run dir", func(t *testing.T) string {
			p := filepath.Join(testutil.ShortTempDir(t), m.ID())
			if err := os.Symlink(m.RunDir(), p); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"world-readable run dir", func(t *testing.T) string {
			p := filepath.Join(testutil.ShortTempDir(t), m.ID())
			os.Mkdir(p, 0o755)
			os.Chmod(p, 0o755)
			return p
		}},
		{"no owner record", func(t *testing.T) string {
			p := filepath.Join(testutil.ShortTempDir(t), m.ID())
			os.Mkdir(p, 0o700)
			return p
		}},
		{"record copied under another id", func(t *testing.T) string {
			p := filepath.Join(testutil.ShortTempDir(t), "0123456789abcdef")
			os.Mkdir(p, 0o700)
			data, err := os.ReadFile(filepath.Join(m.RunDir(), "machine.json"))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(p, "machine.json"), data, 0o600)
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, err := vm.Attach(tt.setup(t)); err == nil {
				a.Close()
				t.Fatal("Attach succeeded")
			}
		})
	}
}

// TestAttachCopiedRecord: a record naming a live VMM, copied into a run
// directory whose path the VMM's command line does not name, attaches to a
// stopped VM: the VMM is never signalled through it.
func TestAttachCopiedRecord(t *testing.T) {
	m, _ := attachTo(t)
	p := filepath.Join(testutil.ShortTempDir(t), m.ID())
	os.Mkdir(p, 0o700)
	data, err := os.ReadFile(filepath.Join(m.RunDir(), "machine.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p, "machine.json"), data, 0o600)
	a, err := vm.Attach(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.State() != vm.Stopped || a.PID() != 0 {
		t.Errorf("state %v pid %d, want stopped", a.State(), a.PID())
	}
	if err := a.Kill(); err != nil {
		t.Error(err)
	}
	if m.State() != vm.Running {
		t.Errorf("the real VM is %v", m.State())
	}
}

// TestAttachToken: an attached client authenticates with the token in the
// run directory; a wrong token there is refused by the agent at once (no
// retrying until the deadline), and a missing one fails at once too.
func TestAttachToken(t *testing.T) {
	// The fake's guest agent requires the boot's token, read from the run
	// directory as a guest reads its kernel command line.
	t.Setenv("FAKEFC_GUEST_CMD", "exec '"+testutil.Agent(t)+"' --listen unix://$FAKEFC_GUEST_DIR/1024 --token-file $FAKEFC_GUEST_DIR/../"+vm.AgentTokenFile)
	m, err := vm.Create(t.Context(), fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Destroy(context.Background()) })
	a, err := vm.Attach(m.RunDir())
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	agentUp := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		c, err := a.Agent(ctx)
		if err != nil {
			t.Fatalf("Agent %s: %v", what, err)
		}
		c.Close()
	}
	agentUp("with the boot's token") // the agent has read its token
	tokPath := filepath.Join(m.RunDir(), vm.AgentTokenFile)
	good, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		token string // "" removes the file
		want  error
	}{
		{"wrong token", "0123456789abcdef0123456789abcdef\n", agent.ErrRefused},
		{"no token", "", os.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.token == "" {
				if err := os.Remove(tokPath); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(tokPath, []byte(tt.token), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			start := time.Now()
			c, err := a.Agent(ctx)
			if err == nil {
				c.Close()
				t.Fatal("Agent succeeded")
			}
			if !errors.Is(err, tt.want) || ctx.Err() != nil {
				t.Fatalf("Agent = %v (after %v), want %v before the deadline", err, time.Since(start), tt.want)
			}
		})
	}
	if err := os.WriteFile(tokPath, good, 0o600); err != nil {
		t.Fatal(err)
	}
	agentUp("with the token restored")
}
