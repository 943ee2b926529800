package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// buildDir is the per-process directory holding built executables.
var buildDir struct {
	once sync.Once
	path string
	err  error
}

// builds caches one build per package path.
var (
	buildsMu sync.Mutex
	builds   = map[string]*buildResult{}
)

type buildResult struct {
	once   sync.Once
	path   string
	output string
	err    error
}

// FakeFirecracker builds ./internal/fakefirecracker once per test process
// and returns the path of the executable, named "firecracker".
func FakeFirecracker(tb testing.TB) string {
	tb.Helper()
	return Build(tb, "./internal/fakefirecracker", "firecracker")
}

// Agent builds the static guest agent (./cmd/petty-agent) once per test
// process and returns its path.
func Agent(tb testing.TB) string {
	tb.Helper()
	return Build(tb, "./cmd/petty-agent", "petty-agent")
}

// Build runs "CGO_ENABLED=0 go build -o <dir>/<name> <pkg>" in the module root once per test
// process and pkg, and returns the executable's path. pkg is a package path
// relative to the module root ("./cmd/petty-agent") or a full import path.
// The build fails tb, with the compiler output, on error. Executables live in
// a per-process temporary directory that [Cleanup] removes.
func Build(tb testing.TB, pkg, name string) string {
	tb.Helper()
	buildsMu.Lock()
	r, ok := builds[pkg]
	if !ok {
		r = &buildResult{}
		builds[pkg] = r
	}
	buildsMu.Unlock()
	r.once.Do(func() { r.path, r.output, r.err = build(pkg, name) })
	if r.err != nil {
		tb.Fatalf("testutil: building %s: %v\n%s", pkg, r.err, r.output)
	}
	if filepath.Base(r.path) != name {
		tb.Fatalf("testutil: %s was already built as %s, not %s", pkg, filepath.Base(r.path), name)
	}
	return r.path
}

func build(pkg, name string) (path, output string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	buildDir.once.Do(func() { buildDir.path, buildDir.err = os.MkdirTemp("", "petty-testbin-") })
	if buildDir.err != nil {
		return "", "", buildDir.err
	}
	dir := filepath.Join(buildDir.path, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", path, pkg)
	cmd.Dir = root
	// Static executables: the guest agent must run in a guest without libc,
	// and the others lose nothing by it.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	return path, string(out), err
}

var moduleRoot struct {
	once sync.Once
	path string
	err  error
}

// ModuleRoot returns the directory of the main module's go.mod, as reported
// by "go env GOMOD".
func ModuleRoot() (string, error) {
	moduleRoot.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			moduleRoot.err = err
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			moduleRoot.err = os.ErrNotExist
			return
		}
		moduleRoot.path = filepath.Dir(gomod)
	})
	return moduleRoot.path, moduleRoot.err
}

// Cleanup removes the executables built by [Build]. Call it from TestMain
// after m.Run:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testutil.Cleanup()
//		os.Exit(code)
//	}
func Cleanup() {
	if buildDir.path != "" {
		_ = os.RemoveAll(buildDir.path)
	}
}

// Main runs the tests, calls [Cleanup] and, if they passed, fails the run
// when goroutines leaked; then it exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
