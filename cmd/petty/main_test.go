package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/testutil"
)

func TestMain(m *testing.M) {
	// A detached VM's supervisor outlives the petty that started it; as a
	// subreaper, the test process inherits it and reaps it (reapOrphan)
	// instead of leaving a zombie to an init that may never reap.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER):", err)
		os.Exit(1)
	}
	testutil.Main(m)
}

// harness runs the petty executable against the fake firecracker, whose
// guest is the real petty-agent, with private run and state directories.
type harness struct {
	t                *testing.T
	petty            string
	runDir, stateDir string
	kernel, rootfs   string
	fake             string
	env              []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := testutil.ShortTempDir(t)
	h := &harness{
		t:        t,
		petty:    testutil.Build(t, "./cmd/petty", "petty"),
		fake:     testutil.FakeFirecracker(t),
		runDir:   filepath.Join(dir, "run"),
		stateDir: filepath.Join(dir, "state"),
		kernel:   filepath.Join(dir, "vmlinux"),
		rootfs:   filepath.Join(dir, "rootfs.ext4"),
	}
	agent := testutil.Agent(t)
	for _, p := range []string{h.kernel, h.rootfs} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.env = append(os.Environ(),
		"FAKEFC_GUEST_CMD=exec '"+agent+"' --listen unix://$FAKEFC_GUEST_DIR/1024",
		"PETTY_RUN_DIR="+h.runDir,
		"PETTY_STATE_DIR="+h.stateDir,
		"XDG_RUNTIME_DIR="+dir,
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
	)
	t.Cleanup(h.checkClean)
	return h
}

// vmFlags are the flags that boot the fake.
func (h *harness) vmFlags() []string {
	return []string{"--vmm", "firecracker", "--firecracker-bin", h.fake, "--kernel", h.kernel, "--rootfs", h.rootfs}
}

// result is what one petty invocation did.
type result struct {
	stdout, stderr string
	code           int
}

// command returns an unstarted petty invocation.
func (h *harness) command(stdin io.Reader, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	c := exec.Command(h.petty, args...)
	c.Env = h.env
	c.Stdin = stdin
	c.Stdout, c.Stderr = &stdout, &stderr
	return c, &stdout, &stderr
}

// run runs petty to completion.
func (h *harness) run(stdin io.Reader, args ...string) result {
	h.t.Helper()
	c, stdout, stderr := h.command(stdin, args...)
	err := c.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		h.t.Fatalf("petty %v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: c.ProcessState.ExitCode()}
}

// runVM is "petty run <fake flags> -- args...".
func (h *harness) runVM(stdin io.Reader, args ...string) result {
	h.t.Helper()
	return h.run(stdin, append(append(append([]string{"run"}, h.vmFlags()...), "--"), args...)...)
}

// checkClean asserts that nothing is left: no run directory, no state file,
// no child process.
func (h *harness) checkClean() {
	t := h.t
	for _, dir := range []string{h.runDir, h.stateDir} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("reading %s: %v", dir, err)
		}
		for _, e := range entries {
			t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
		}
	}
	testutil.CheckNoChildren(t)
}

// reapOrphan waits for pid, an orphan the test process inherited as
// subreaper, to exit and reaps it.
func reapOrphan(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid || errors.Is(err, syscall.ECHILD) {
			return // reaped, or not ours (reparented elsewhere, already reaped)
		}
		if time.Now().After(deadline) {
			t.Errorf("pid %d still running", pid)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
