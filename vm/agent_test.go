package vm_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// withAgentGuest makes the fake firecracker run the real petty-agent as its
// guest, listening where the fake forwards vsock port 1024.
func withAgentGuest(t *testing.T) {
	t.Helper()
	bin := testutil.Agent(t)
	t.Setenv("FAKEFC_GUEST_CMD", "exec '"+bin+"' --listen unix://$FAKEFC_GUEST_DIR/1024")
}

func TestAgent(t *testing.T) {
	withAgentGuest(t)
	ctx := t.Context()
	m, err := vm.Create(ctx, fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	pid := m.PID()
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := m.Agent(actx)
	if err != nil {
		t.Fatalf("Agent: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	info, err := c.Ping(ctx)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if info.PID == 0 || info.Version == "" {
		t.Errorf("Ping = %+v, want a pid and a version", info)
	}
	var out bytes.Buffer
	if err := c.Exec(ctx, &agent.Cmd{Args: []string{"echo", "hi"}, Stdout: &out}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if got := out.String(); got != "hi\n" {
		t.Errorf("Exec output = %q, want %q", got, "hi\n")
	}
	// A second client works alongside the first.
	c2, err := m.Agent(actx)
	if err != nil {
		t.Fatalf("second Agent: %v", err)
	}
	if err := c2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	checkClean(t, m, pid)
}

func TestAgentErrors(t *testing.T) {
	tests := []struct {
		name  string
		guest string // FAKEFC_GUEST_CMD; "" runs no guest
		start bool
		want  error
	}{
		{name: "not started", start: false, want: vm.ErrNotRunning},
		{name: "no agent answers", guest: "", start: true, want: context.DeadlineExceeded},
		{name: "guest exits", guest: "sleep 0.2; exit 3", start: true, want: vm.ErrNotRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FAKEFC_GUEST_CMD", tt.guest)
			ctx := t.Context()
			m, err := vm.New(fakeConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := m.Destroy(ctx); err != nil {
					t.Errorf("Destroy: %v", err)
				}
				checkClean(t, m, 0)
			}()
			if tt.start {
				if err := m.Start(ctx); err != nil {
					t.Fatal(err)
				}
			}
			actx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			defer cancel()
			c, err := m.Agent(actx)
			if err == nil {
				c.Close()
				t.Fatal("Agent succeeded, want an error")
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("Agent = %v, want %v", err, tt.want)
			}
		})
	}
}
