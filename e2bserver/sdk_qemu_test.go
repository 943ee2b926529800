package e2bserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// sdkDir holds the JS end-to-end script and its pinned SDK.
const sdkDir = "testdata/js"

// TestQEMUE2BSDK runs E2B's official JS SDK (npm e2b, pinned in
// testdata/js/package-lock.json), unchanged, against a real petty serve
// booting the Debian image in QEMU guests: testdata/js/e2e.mjs creates
// sandboxes, runs commands (exit codes, streamed output, cwd, envs, stdin,
// timeouts, background processes), uses the files API, lists, times out
// and kills sandboxes, and checks that wrong keys and tokens get 401.
func TestQEMUE2BSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Debian guests under QEMU and runs node")
	}
	testutil.RequireQEMU(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: run `bash hack/deps.sh` (apt-get install nodejs npm)")
	}
	if _, err := os.Stat(filepath.Join(sdkDir, "node_modules", "e2b")); err != nil {
		t.Skipf("the E2B SDK is not installed: run `npm ci` in e2bserver/%s (hack/test.sh does)", sdkDir)
	}
	img := testutil.DebianImage(t)
	petty := testutil.Build(t, "./cmd/petty", "petty")
	agent := testutil.Agent(t)
	dir := testutil.ShortTempDir(t)
	runDir := filepath.Join(dir, "run")

	const key = "e2b_" + "feedfacecafe0123456789abcdef0123456789ab"
	serve := exec.Command(petty, "serve", "--vmm", "qemu", "--image", img.Dir, "--memory", "512",
		"--boot-timeout", "3m", "--listen", "127.0.0.1:0")
	serve.Env = append(os.Environ(),
		"PATH="+filepath.Dir(agent)+string(filepath.ListSeparator)+os.Getenv("PATH"),
		"PETTY_TOKEN="+key, "PETTY_RUN_DIR="+runDir, "PETTY_STATE_DIR="+filepath.Join(dir, "state"),
		"XDG_RUNTIME_DIR="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	stderr, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	addr := make(chan string, 1)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if a, ok := strings.CutPrefix(sc.Text(), "petty serve: listening on "); ok && !sent {
				addr <- strings.Fields(a)[0]
				sent = true
			}
		}
		if !sent {
			addr <- ""
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = serve.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- serve.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("petty serve after SIGTERM: %v", err)
			}
		case <-time.After(40 * time.Second):
			_ = serve.Process.Kill()
			<-done
			t.Error("petty serve did not exit within 40 s of SIGTERM")
		}
		<-logged
	}
	t.Cleanup(stop)
	var url string
	select {
	case url = <-addr:
	case <-time.After(time.Minute):
	}
	if url == "" {
		stop()
		t.Fatalf("petty serve did not listen:\n%s", log.String())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	began := time.Now()
	js := exec.CommandContext(ctx, node, "e2e.mjs")
	js.Dir = sdkDir
	js.Env = append(os.Environ(), "E2B_API_URL="+url, "E2B_SANDBOX_URL="+url, "E2B_API_KEY="+key)
	out, err := js.CombinedOutput()
	took := time.Since(began)
	t.Logf("e2e.mjs (%v):\n%s", took.Round(time.Millisecond), out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var sum struct{ Passed, Failed, SDKCalls int }
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &sum); err != nil {
		t.Errorf("no summary line from e2e.mjs: %v", err)
	}
	if err != nil || sum.Failed != 0 || sum.Passed == 0 {
		t.Errorf("E2B's JS SDK against petty serve: %v, %d checks passed, %d failed", err, sum.Passed, sum.Failed)
	}
	t.Logf("%d checks, %d SDK calls in %v", sum.Passed+sum.Failed, sum.SDKCalls, took.Round(time.Millisecond))
	stop()
	if t.Failed() {
		t.Logf("petty serve's log:\n%s", log.String())
	}
	if left := qemuUnder(runDir); len(left) > 0 {
		t.Errorf("QEMU processes left: %v", left)
	}
}

// qemuUnder returns the pids of the QEMU processes whose command line
// names dir.
func qemuUnder(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte("qemu-system")) && bytes.Contains(cmdline, []byte(dir)) && testutil.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
