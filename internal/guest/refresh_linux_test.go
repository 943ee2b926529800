package guest

import (
	"errors"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/agent/wire"
)

// TestRefreshOutsideAGuest: an agent that is not PID 1 checks the request
// and refuses to touch its machine (FailedPrecondition), or, with
// RefreshDryRunEnv, answers without touching it. This test never runs the
// real reseed, clock and host name changes: the QEMU tests of package vm
// do, inside guests.
func TestRefreshOutsideAGuest(t *testing.T) {
	c := newTestClient(t)
	ctx := testContext(t)
	seed := make([]byte, 32)
	tests := []struct {
		name     string
		entropy  []byte
		now      time.Time
		hostname string
		dryRun   bool
		want     wire.Code // 0: success
	}{
		{"refused", seed, time.Now(), "h", false, wire.FailedPrecondition},
		{"dry run", seed, time.Now(), "clone-1", true, 0},
		{"short entropy", seed[:31], time.Now(), "", true, wire.InvalidArgument},
		{"huge entropy", make([]byte, 4097), time.Now(), "", true, wire.InvalidArgument},
		{"no clock", seed, time.Unix(0, 0), "", true, wire.InvalidArgument},
		{"bad hostname", seed, time.Now(), "a/b", true, wire.InvalidArgument},
		{"long hostname", seed, time.Now(), string(make([]byte, 65)), true, wire.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.dryRun {
				t.Setenv(RefreshDryRunEnv, "1")
			}
			err := c.Refresh(ctx, tt.entropy, tt.now, tt.hostname)
			var re *agent.RemoteError
			switch {
			case tt.want == 0 && err != nil:
				t.Fatalf("Refresh: %v", err)
			case tt.want != 0 && (!errors.As(err, &re) || re.Code != tt.want):
				t.Fatalf("Refresh: %v, want code %v", err, tt.want)
			}
		})
	}
}
