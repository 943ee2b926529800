package agent

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestHostDeps checks that the host library links no RPC framework and no
// guest code: go list -deps ./vm ./agent must not show grpc, logrus, ttrpc
// or internal/guest.
func TestHostDeps(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("needs the go command (install Go or put it in PATH)")
		}
	}
	cmd := exec.Command(goBin, "list", "-deps", "./vm", "./agent")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"google.golang.org/grpc",
		"github.com/sirupsen/logrus",
		"github.com/containerd/ttrpc",
		"github.com/pettyvm/petty/internal/guest",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("./vm or ./agent links %s", pkg)
			}
		}
	}
}
