package image

import (
	"context"
	"os"
	"testing"

	"github.com/pettyvm/petty/internal/guest"
)

func TestAgentInitProtocolMatchesAgent(t *testing.T) {
	if agentInitProtocol != guest.InitramfsInitProtocol {
		t.Fatalf("agentInitProtocol = %q, guest.InitramfsInitProtocol = %q", agentInitProtocol, guest.InitramfsInitProtocol)
	}
}

// TestInitramfsAgentIsInit: an agent that can be init is /init, and the
// shell init moves to /init.sh for root= boots.
func TestInitramfsAgentIsInit(t *testing.T) {
	h := newFakeHost(t)
	writeFile(t, h.agent, fakeELF([]byte("agent v2 "+agentInitProtocol)))
	img, err := Build(context.Background(), h.options(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]newcEntry{}
	for _, e := range parseNewc(t, raw) {
		byName[e.Name] = e
	}
	if e := byName["init"]; e.Mode&0o170000 != cpioModeSymlink || e.Data != agentGuestPath {
		t.Errorf("init: mode %o -> %q, want a symlink to %s", e.Mode, e.Data, agentGuestPath)
	}
	if e, ok := byName["init.sh"]; !ok || e.Data != initScript || e.Mode&0o777 != 0o755 {
		t.Errorf("init.sh missing or not the executable init.sh (mode %o)", e.Mode)
	}
	if _, ok := byName["etc/petty/modules.load"]; !ok {
		t.Error("no modules.load")
	}
}
