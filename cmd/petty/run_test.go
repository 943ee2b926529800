package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

func TestRunEcho(t *testing.T) {
	h := newHarness(t)
	res := h.runVM(nil, "echo", "hi")
	if res.code != 0 || res.stdout != "hi\n" {
		t.Fatalf("petty run -- echo hi: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res.stderr != "" {
		t.Errorf("stderr = %q, want nothing (not a terminal, no -v)", res.stderr)
	}
}

func TestRunExitCodes(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"zero", []string{"true"}, 0},
		{"exit 7", []string{"sh", "-c", "exit 7"}, 7},
		{"killed by SIGKILL", []string{"sh", "-c", "kill -9 $$"}, 128 + 9},
		{"killed by SIGTERM", []string{"sh", "-c", "kill -15 $$"}, 128 + 15},
		{"not found", []string{"petty-no-such-command"}, 127},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := h.runVM(nil, tt.args...)
			if res.code != tt.want {
				t.Errorf("exit code %d, want %d (stderr %q)", res.code, tt.want, res.stderr)
			}
		})
	}
}

func TestRunStdin(t *testing.T) {
	h := newHarness(t)
	in := "hello\nworld\n"
	res := h.runVM(strings.NewReader(in), "cat")
	if res.code != 0 || res.stdout != in {
		t.Fatalf("cat: code %d, stdout %q, want %q (stderr %q)", res.code, res.stdout, in, res.stderr)
	}
	// No stdin at all (/dev/null): the command sees EOF.
	res = h.runVM(nil, "wc", "-c")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "0" {
		t.Fatalf("wc -c </dev/null: code %d, stdout %q", res.code, res.stdout)
	}
}

// TestRunLargeStreams pushes megabytes through stdout, stderr and stdin.
func TestRunLargeStreams(t *testing.T) {
	h := newHarness(t)
	const script = "head -c 5000000 /dev/zero | tr '\\0' x | base64"
	want, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	res := h.runVM(nil, "sh", "-c", script)
	if res.code != 0 || sum(res.stdout) != sum(string(want)) {
		t.Fatalf("stdout: code %d, %d bytes (sha %s), want %d bytes (sha %s); stderr %q",
			res.code, len(res.stdout), sum(res.stdout), len(want), sum(string(want)), res.stderr)
	}

	res = h.runVM(nil, "sh", "-c", script+" >&2")
	if res.code != 0 || sum(res.stderr) != sum(string(want)) || res.stdout != "" {
		t.Fatalf("stderr: code %d, %d bytes, want %d", res.code, len(res.stderr), len(want))
	}

	in := make([]byte, 5<<20)
	rand.Read(in)
	res = h.runVM(strings.NewReader(string(in)), "sha256sum")
	if got, _, _ := strings.Cut(res.stdout, " "); res.code != 0 || got != sum(string(in)) {
		t.Fatalf("stdin: code %d, guest sha256 %q, want %s (stderr %q)", res.code, res.stdout, sum(string(in)), res.stderr)
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestRunParallel(t *testing.T) {
	h := newHarness(t)
	var wg sync.WaitGroup
	results := make([]result, 8)
	for i := range results {
		wg.Go(func() { results[i] = h.runVM(nil, "sh", "-c", fmt.Sprintf("echo vm-%d; exit %d", i, i)) })
	}
	wg.Wait()
	for i, res := range results {
		if res.code != i || res.stdout != fmt.Sprintf("vm-%d\n", i) {
			t.Errorf("run %d: code %d, stdout %q, stderr %q", i, res.code, res.stdout, res.stderr)
		}
	}
}

func TestRunVerbose(t *testing.T) {
	h := newHarness(t)
	res := h.run(nil, append(append([]string{"run", "-v"}, h.vmFlags()...), "--", "echo", "hi")...)
	if res.code != 0 || res.stdout != "hi\n" {
		t.Fatalf("code %d, stdout %q", res.code, res.stdout)
	}
	for _, want := range []string{"booting VM (firecracker)", "fake"} { // progress, console
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}

// stopSignalTests are the signals that end a foreground petty run, with
// the exit codes a shell would report.
var stopSignalTests = []struct {
	sig  syscall.Signal
	code int
}{
	{syscall.SIGINT, 130},
	{syscall.SIGTERM, 143},
	{syscall.SIGHUP, 129},
	{syscall.SIGQUIT, 131},
}

// startReady starts "petty argv..." whose guest command prints "ready" and
// sleeps, and returns once the line arrived.
func (h *harness) startReady(t *testing.T, argv []string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	c, _, stderr := h.command(nil, argv...)
	c.Stdout = nil
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		c.Process.Kill()
		c.Wait()
		t.Fatalf("first line %q, want ready; stderr:\n%s", line, stderr)
	}
	go io.Copy(io.Discard, out)
	return c, stderr
}

// checkStoppedBy sends sig to the foreground petty run c and checks the
// exit code, that no process naming the run root is left, and that the run
// root is empty.
func (h *harness) checkStoppedBy(t *testing.T, c *exec.Cmd, stderr *bytes.Buffer, sig syscall.Signal, code int) {
	t.Helper()
	vmms := procsNaming(t, h.runDir+"/")
	if len(vmms) == 0 {
		t.Fatalf("no VMM names %s", h.runDir)
	}
	began := time.Now()
	c.Process.Signal(sig)
	c.Wait()
	if got := c.ProcessState.ExitCode(); got != code {
		t.Errorf("exit code %d, want %d; stderr %q", got, code, stderr.String())
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("petty took %v to stop", d)
	}
	for _, pid := range vmms {
		if testutil.Alive(pid) {
			t.Errorf("VMM pid %d alive after %v", pid, sig)
		}
	}
	if entries, _ := os.ReadDir(h.runDir); len(entries) != 0 {
		t.Errorf("run dir %s not empty after %v: %v", h.runDir, sig, entries)
	}
}

// TestRunSignals sends each stop signal while the command runs: petty
// destroys the VM and exits 128 + the signal's number.
func TestRunSignals(t *testing.T) {
	h := newHarness(t)
	for _, tt := range stopSignalTests {
		t.Run(tt.sig.String(), func(t *testing.T) {
			c, stderr := h.startReady(t, append(append([]string{"run"}, h.vmFlags()...), "--", "sh", "-c", "echo ready; exec sleep 60"))
			h.checkStoppedBy(t, c, stderr, tt.sig, tt.code)
		})
	}
}

// procsNaming returns the live processes, other than this one, whose
// command line contains s.
func procsNaming(t *testing.T, s string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) && testutil.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestRunErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name   string
		args   []string
		env    string
		code   int
		stderr []string
	}{
		{name: "bad flag", args: []string{"run", "--no-such-flag", "--", "true"}, code: 2,
			stderr: []string{"unknown flag: --no-such-flag", "Usage: petty run", "--help"}},
		{name: "bad vmm", args: []string{"run", "--vmm", "bochs", "--", "true"}, code: 2, stderr: []string{"--vmm"}},
		{name: "no command", args: []string{"run", "--kernel", h.kernel}, code: 2, stderr: []string{"missing the command"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
		{name: "exec without command", args: []string{"exec", "x"}, code: 2, stderr: []string{"Usage: petty exec"}},
		{name: "missing kernel", args: []string{"run", "--vmm", "firecracker", "--firecracker-bin", h.fake, "--kernel", "/nonexistent/vmlinux", "--", "true"},
			code: 1, stderr: []string{"Kernel", "/nonexistent/vmlinux"}},
		{name: "missing firecracker", args: []string{"run", "--vmm", "firecracker", "--firecracker-bin", "/nonexistent/firecracker", "--kernel", h.kernel, "--", "true"},
			code: 1, stderr: []string{"/nonexistent/firecracker", "PETTY_FIRECRACKER_BIN"}},
		{name: "vmm crash", args: append(append([]string{"run"}, h.vmFlags()...), "--", "true"), env: "FAKEFC_CRASH_AT_START=1",
			code: 1, stderr: []string{"InjectedCrash", "console tail"}},
		{name: "no agent", args: append(append([]string{"run", "--boot-timeout", "1s"}, h.vmFlags()...), "--", "true"), env: "FAKEFC_GUEST_CMD=",
			code: 1, stderr: []string{"--boot-timeout 1s"}},
		{name: "exec unknown vm", args: []string{"exec", "nope", "--", "true"}, code: 1, stderr: []string{`no such VM "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, stdout, stderr := h.command(nil, tt.args...)
			if tt.env != "" {
				c.Env = append(append([]string(nil), h.env...), tt.env)
			}
			_ = c.Run()
			if code := c.ProcessState.ExitCode(); code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr.String(), "goroutine ") {
				t.Errorf("stderr has a Go stack trace:\n%s", stderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	res := h.run(nil, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "petty ") {
		t.Fatalf("version: code %d, stdout %q", res.code, res.stdout)
	}
}
