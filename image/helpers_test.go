package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var standin struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if standin.dir != "" {
		os.RemoveAll(standin.dir)
	}
	os.Exit(code)
}

// standinAgent builds testdata/standin-agent (a static Go program that
// prints PETTY-TEST-MARKER and powers off only when it is PID 1) once per
// test binary and returns its path.
func standinAgent(t *testing.T) string {
	t.Helper()
	standin.once.Do(func() {
		if standin.dir, standin.err = os.MkdirTemp("", "petty-standin-"); standin.err != nil {
			return
		}
		standin.path = filepath.Join(standin.dir, "standin-agent")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", standin.path, "./testdata/standin-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		standin.out, standin.err = cmd.CombinedOutput()
	})
	if standin.err != nil {
		t.Fatalf("build stand-in agent: %v\n%s", standin.err, standin.out)
	}
	return standin.path
}

// hostKernel returns the default Debian cloud kernel or skips the test.
func hostKernel(t *testing.T) string {
	t.Helper()
	k, err := defaultKernel()
	if err != nil {
		t.Skipf("%v", err)
	}
	return k
}
