package image

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// hostTSCkHz returns the host's TSC frequency in kHz from /proc/cpuinfo
// ("cpu MHz"), or 0. Under TCG the guest's rdtsc counts at the host's rate;
// tsc_early_khz spares the guest a calibration microvm has no PIT for.
func hostTSCkHz() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil && mhz > 0 {
				return int(math.Round(mhz * 1000))
			}
		}
	}
	return 0
}
