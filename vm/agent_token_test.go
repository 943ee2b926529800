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
	"github.com/pettyvm/petty/vsock"
)

// TestAgentToken runs the fake firecracker's guest agent with a token: the
// boot's own (read from the run directory, standing in for the kernel
// command line), or another one. Only the boot's token gets through.
func TestAgentToken(t *testing.T) {
	bin := testutil.Agent(t)
	tests := []struct {
		name  string
		token string // the guest's token file, relative to the fake guest dir
		ok    bool
	}{
		{"the boot's token", "../" + vm.AgentTokenFile, true},
		{"another token", "other.token", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FAKEFC_GUEST_CMD", "printf 0123456789abcdef0123456789abcdef > $FAKEFC_GUEST_DIR/other.token; "+
				"exec '"+bin+"' --listen unix://$FAKEFC_GUEST_DIR/1024 --token-file $FAKEFC_GUEST_DIR/"+tt.token)
			ctx := t.Context()
			m, err := vm.Create(ctx, fakeConfig(t))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := m.Destroy(context.Background()); err != nil {
					t.Errorf("Destroy: %v", err)
				}
			}()
			actx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			c, err := m.Agent(actx)
			if !tt.ok {
				// Refused: at once, not when ctx ends.
				if !errors.Is(err, agent.ErrRefused) || actx.Err() != nil {
					t.Fatalf("Agent = %v (ctx %v), want ErrRefused before ctx ends", err, actx.Err())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}

			// Another process, with and without the token file.
			tok, err := vm.ReadAgentToken(m.RunDir())
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(filepath.Join(m.RunDir(), vm.AgentTokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("token file: %v, %v", fi, err)
			}
			for _, try := range []struct {
				token string
				ok    bool
			}{{"ffffffffffffffffffffffffffffffff", false}, {tok, true}} {
				conn, err := vsock.DialRetry(ctx, m.Config().Vsock.Path, agent.DefaultPort)
				if err != nil {
					t.Fatal(err)
				}
				err = agent.Authenticate(ctx, conn, try.token)
				if try.ok != (err == nil) || (err != nil && !errors.Is(err, agent.ErrAuth)) {
					t.Errorf("token %s: %v", try.token, err)
				}
				conn.Close()
			}
		})
	}
}
