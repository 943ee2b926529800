package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// qemuFlags make the real guests boot as fast as TCG allows, from the busybox
// initramfs image (the image tests boot root file systems themselves).
var qemuFlags = []string{"--image", "minimal", "--memory", "256", "--vcpus", "1"}

// qemuCache records the one "petty image build" of this test process into
// the XDG_CACHE_HOME that every TestQEMU* test shares.
var qemuCache struct {
	once sync.Once
	out  string
	err  error
}

// newQEMUHarness returns a harness whose petty boots real QEMU guests from
// its default guest image (as "petty run -- CMD" does for a newcomer), with
// private run and state directories. It skips the test when QEMU or the
// Debian cloud kernel is missing.
func newQEMUHarness(t *testing.T) *harness {
	t.Helper()
	testutil.RequireQEMU(t)
	dir := testutil.ShortTempDir(t)
	agent := testutil.Agent(t)
	h := &harness{
		t:        t,
		petty:    testutil.Build(t, "./cmd/petty", "petty"),
		runDir:   filepath.Join(dir, "run"),
		stateDir: filepath.Join(dir, "state"),
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "PATH" && k != vm.FirecrackerBinEnv {
			env = append(env, kv)
		}
	}
	h.env = append(env,
		// petty finds petty-agent next to itself, else in $PATH.
		"PATH="+filepath.Dir(agent)+string(filepath.ListSeparator)+os.Getenv("PATH"),
		"PETTY_RUN_DIR="+h.runDir,
		"PETTY_STATE_DIR="+h.stateDir,
		"XDG_RUNTIME_DIR="+dir,
	)
	// The image cache lives next to the agent, in the directory of built
	// executables that TestMain's testutil.Cleanup removes; the first test
	// to get here builds the image into it.
	h.env = append(h.env, "XDG_CACHE_HOME="+filepath.Join(filepath.Dir(agent), "xdg-cache"))
	qemuCache.once.Do(func() {
		c, stdout, stderr := h.command(nil, "image", "build", "--minimal")
		qemuCache.err = c.Run()
		qemuCache.out = stdout.String() + stderr.String()
	})
	if qemuCache.err != nil {
		t.Fatalf("petty image build: %v\n%s", qemuCache.err, qemuCache.out)
	}
	t.Cleanup(h.checkNoQEMU)
	t.Cleanup(h.checkClean)
	return h
}

// runQEMU is "petty run --vmm vmm --memory 256 --vcpus 1 [flags...] -- args...".
func (h *harness) runQEMU(stdin io.Reader, vmm string, flags []string, args ...string) result {
	h.t.Helper()
	argv := append([]string{"run", "--vmm", vmm}, qemuFlags...)
	return h.run(stdin, append(append(append(argv, flags...), "--"), args...)...)
}

// checkNoQEMU fails the test if a qemu-system-x86_64 process whose command
// line names the harness's run directory is still alive.
func (h *harness) checkNoQEMU() {
	h.t.Helper()
	for _, pid := range qemuProcs(h.t, h.runDir) {
		h.t.Errorf("left behind: qemu-system-x86_64 pid %d", pid)
	}
}

// qemuProcs returns the live qemu-system-x86_64 processes whose command line
// contains dir.
func qemuProcs(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		exe, _, _ := bytes.Cut(cmdline, []byte{0})
		if filepath.Base(string(exe)) == "qemu-system-x86_64" && bytes.Contains(cmdline, []byte(dir)) && testutil.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cloudRelease matches a Debian cloud kernel release.
var cloudRelease = regexp.MustCompile(`\b\d+\.\d+\.\d+-\d+-cloud-amd64\b`)

func TestQEMURunUname(t *testing.T) {
	h := newQEMUHarness(t)
	res := h.runQEMU(nil, "qemu", nil, "uname", "-a")
	if res.code != 0 {
		t.Fatalf("petty run --vmm qemu -- uname -a: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	line := strings.TrimSpace(res.stdout)
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "Linux ") {
		t.Errorf("uname -a printed %q, want one line starting with Linux", res.stdout)
	}
	if rel := cloudRelease.FindString(line); rel == "" {
		t.Errorf("uname -a printed %q, want a -cloud-amd64 release", line)
	} else if _, err := os.Stat("/boot/vmlinuz-" + rel); err != nil {
		t.Errorf("guest runs %s, not a kernel of /boot: %v", rel, err)
	}
	if res.stderr != "" {
		t.Errorf("stderr = %q, want nothing (not a terminal, no -v)", res.stderr)
	}
}

// TestQEMURunAuto checks that --vmm auto picks QEMU where Firecracker
// cannot run, and that the guest command's exit code comes back.
func TestQEMURunAuto(t *testing.T) {
	h := newQEMUHarness(t)
	if c, _ := chooseVMM("auto", ""); c.vmm != vm.QEMU {
		t.Skipf("--vmm auto picks %s on this host (%s)", c.vmm, c.reason)
	}
	res := h.run(nil, append(append([]string{"-v", "run", "--vmm", "auto"}, qemuFlags...), "--", "sh", "-c", "exit 5")...)
	if res.code != 5 {
		t.Errorf("petty -v run --vmm auto -- sh -c 'exit 5': code %d, want 5; stderr:\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "vmm=qemu") {
		t.Errorf("stderr does not say that auto chose qemu:\n%s", res.stderr)
	}
}

func TestQEMURunStdin(t *testing.T) {
	h := newQEMUHarness(t)
	in := "hello\nfrom the host\n"
	res := h.runQEMU(strings.NewReader(in), "qemu", nil, "cat")
	if res.code != 0 || res.stdout != in {
		t.Fatalf("cat: code %d, stdout %q, want %q (stderr %q)", res.code, res.stdout, in, res.stderr)
	}
}

// TestQEMURunDrives writes to an ext4 and a raw --drive in one VM and reads
// both back in the next. The drives are given as relative paths: the VMM
// runs in its run directory, not in petty's working directory.
func TestQEMURunDrives(t *testing.T) {
	h := newQEMUHarness(t)
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not found: apt-get install e2fsprogs")
	}
	dir := t.TempDir()
	ext4, raw := filepath.Join(dir, "data.ext4"), filepath.Join(dir, "data.raw")
	for _, p := range []string{ext4, raw} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(mkfs, "-q", ext4).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}

	// run is petty run with the working directory dir and the drives as
	// relative paths (no rootfs: the first drive is /dev/vda).
	run := func(script string) result {
		t.Helper()
		argv := append(append([]string{"run", "--vmm", "qemu"}, qemuFlags...),
			"--drive", "data.ext4", "--drive", "data.raw", "--", "sh", "-c", script)
		c, stdout, stderr := h.command(nil, argv...)
		c.Dir = dir
		err := c.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("petty %v: %v", argv, err)
		}
		return result{stdout: stdout.String(), stderr: stderr.String(), code: c.ProcessState.ExitCode()}
	}
	const write = `set -e
mkdir -p /mnt/data
mount -t ext4 /dev/vda /mnt/data
echo ext4-persisted >/mnt/data/file
umount /mnt/data
echo raw-persisted | dd of=/dev/vdb conv=fsync 2>/dev/null`
	if res := run(write); res.code != 0 {
		t.Fatalf("writing the drives: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	const read = `set -e
mkdir -p /mnt/data
mount -t ext4 -o ro /dev/vda /mnt/data
cat /mnt/data/file
umount /mnt/data
head -n 1 /dev/vdb`
	res := run(read)
	if want := "ext4-persisted\nraw-persisted\n"; res.code != 0 || res.stdout != want {
		t.Fatalf("reading the drives: code %d, stdout %q, want %q; stderr %q", res.code, res.stdout, want, res.stderr)
	}
	// The host sees the raw write too.
	if b, err := os.ReadFile(raw); err != nil || !bytes.HasPrefix(b, []byte("raw-persisted\n")) {
		t.Errorf("host reads %q... (%v), want raw-persisted", b[:min(len(b), 16)], err)
	}
}

// TestQEMUDetachCycle runs a detached QEMU guest through exec (twice: each
// exec opens and closes the agent's serial channel, which must not end the
// guest), ls and stop.
func TestQEMUDetachCycle(t *testing.T) {
	h := newQEMUHarness(t)
	res := h.run(nil, append([]string{"run", "--vmm", "qemu", "--detach", "--name", "qbox"}, qemuFlags...)...)
	if res.code != 0 || res.stdout != "qbox\n" {
		t.Fatalf("run --detach: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	r := h.readRecord("qbox")
	defer reapOrphan(t, r.SupervisorPID)
	if r.VMM != vm.QEMU || !testutil.Alive(r.PID) || !testutil.Alive(r.SupervisorPID) || r.RunDir != filepath.Join(h.runDir, r.ID) {
		t.Fatalf("record %+v: want a live QEMU and supervisor, and the run dir %s/ID", r, h.runDir)
	}
	if got := qemuProcs(t, h.runDir); len(got) != 1 || got[0] != r.PID {
		t.Errorf("qemu processes in %s: %v, want [%d]", h.runDir, got, r.PID)
	}

	for i := range 2 {
		res := h.run(nil, "exec", "qbox", "--", "uname", "-r")
		if res.code != 0 || !cloudRelease.MatchString(res.stdout) {
			t.Fatalf("exec %d: code %d, stdout %q, stderr %q", i+1, res.code, res.stdout, res.stderr)
		}
	}
	res = h.run(strings.NewReader("piped\n"), "exec", "qbox", "cat")
	if res.code != 0 || res.stdout != "piped\n" {
		t.Errorf("exec cat: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	res = h.run(nil, "exec", "qbox", "--", "sh", "-c", "exit 3")
	if res.code != 3 {
		t.Errorf("exec exit 3: code %d, stderr %q", res.code, res.stderr)
	}

	res = h.run(nil, "ls")
	if res.code != 0 || !regexpLine(res.stdout, "qbox", r.ID, "qemu", strconv.Itoa(r.PID), "running") {
		t.Errorf("ls: code %d, stdout:\n%s", res.code, res.stdout)
	}

	h.stopAndCheckGone(t, "qbox", r)
	if res := h.run(nil, "ls"); res.code != 0 || strings.Contains(res.stdout, "qbox") {
		t.Errorf("ls after stop: code %d, stdout:\n%s", res.code, res.stdout)
	}
}

// TestQEMUImageBuild builds the minimal guest image into a fresh cache and
// then finds it there.
func TestQEMUImageBuild(t *testing.T) {
	h := newQEMUHarness(t)
	cache := t.TempDir()
	paths := func(stdout string) map[string]string {
		t.Helper()
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("image build: line %q, want KEY: PATH", line)
			}
			got[k] = v
		}
		for _, k := range []string{"kernel", "initrd"} {
			p := got[k]
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 || !strings.HasPrefix(p, cache+"/") {
				t.Errorf("image build: %s %q: want a non-empty file in %s (%v)", k, p, cache, err)
			}
		}
		return got
	}
	res := h.run(nil, "-v", "image", "build", "--minimal", "--cache", cache)
	if res.code != 0 {
		t.Fatalf("image build: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	first := paths(res.stdout)
	if strings.Contains(res.stderr, "cache hit") {
		t.Errorf("first build into an empty cache reports a cache hit:\n%s", res.stderr)
	}

	res = h.run(nil, "-v", "image", "build", "--minimal", "--cache", cache)
	if res.code != 0 {
		t.Fatalf("second image build: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if second := paths(res.stdout); second["kernel"] != first["kernel"] || second["initrd"] != first["initrd"] {
		t.Errorf("second build printed %v, want %v", second, first)
	}
	if !strings.Contains(res.stderr, "cache hit") {
		t.Errorf("second build does not report the cache hit; stderr:\n%s", res.stderr)
	}
}
