package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// plant writes a state record by hand, as another local user or a bug
// could.
func (h *harness) plant(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(h.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(h.stateDir, name+".json")
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlantedRecords: records that name a directory outside petty's run
// root (or a symlink inside it) and an unrelated process make ls, rm and
// stop touch neither.
func TestPlantedRecords(t *testing.T) {
	h := newHarness(t)
	const id = "0123456789abcdef"
	victim := filepath.Join(t.TempDir(), id)
	if err := os.Mkdir(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(victim, "precious")
	if err := os.WriteFile(precious, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A process whose command line names the victim directory.
	sleeper := exec.Command("sh", "-c", "sleep 600; :", victim)
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-sleeper.Process.Pid, syscall.SIGKILL); _ = sleeper.Wait() }()
	if err := os.MkdirAll(h.runDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A symlink in the run root, named like the VM, to the victim.
	const linkID = "fedcba9876543210"
	if err := os.Symlink(victim, filepath.Join(h.runDir, linkID)); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(h.runDir, linkID))

	created := time.Now().UTC().Format(time.RFC3339)
	rec := func(name, id, runDir string) string {
		return fmt.Sprintf(`{"name":%q,"id":%q,"state":"running","vmm":"qemu","pid":%d,"supervisor_pid":%d,"supervisor_start":1,"run_dir":%q,"created":%q}`,
			name, id, sleeper.Process.Pid, sleeper.Process.Pid, runDir, created)
	}
	h.plant(t, "outside", rec("outside", id, victim), 0o600)
	h.plant(t, "viasymlink", rec("viasymlink", linkID, filepath.Join(h.runDir, linkID)), 0o600)
	h.plant(t, "mismatch", rec("mismatch", linkID, victim), 0o600)

	res := h.run(nil, "ls")
	if res.code != 0 {
		t.Fatalf("ls: code %d, stderr %q", res.code, res.stderr)
	}
	for _, want := range [][]string{{"outside", "exited"}, {"viasymlink", "exited"}, {"mismatch", "corrupt"}} {
		if !regexpLine(res.stdout, want...) {
			t.Errorf("ls does not list %v:\n%s", want, res.stdout)
		}
	}
	if res := h.run(nil, "stop", "--timeout", "1s", "outside"); res.code != 1 || !strings.Contains(res.stderr, "not touching it") {
		t.Errorf("stop outside: code %d, stderr %q", res.code, res.stderr)
	}
	for _, name := range []string{"viasymlink", "mismatch"} {
		if res := h.run(nil, "rm", name); res.code != 0 {
			t.Errorf("rm %s: code %d, stderr %q", name, res.code, res.stderr)
		}
	}
	if res := h.run(nil, "rm", "outside"); res.code != 1 {
		t.Errorf("rm outside: code %d, stderr %q", res.code, res.stderr)
	}
	if _, err := os.Stat(precious); err != nil {
		t.Errorf("the victim's file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(h.runDir, linkID)); err != nil {
		t.Errorf("the planted symlink: %v", err)
	}
	if !testutil.Alive(sleeper.Process.Pid) {
		t.Error("an unrelated process named by a record was killed")
	}
	for _, name := range []string{"viasymlink", "mismatch"} {
		if _, err := os.Lstat(filepath.Join(h.stateDir, name+".json")); !os.IsNotExist(err) {
			t.Errorf("record %s still there after rm (%v)", name, err)
		}
	}
	os.Remove(filepath.Join(h.stateDir, "outside.json"))
}

// TestCorruptRecords: a record petty cannot trust is listed as corrupt, and
// rm removes that record file and nothing else.
func TestCorruptRecords(t *testing.T) {
	h := newHarness(t)
	created := time.Now().UTC().Format(time.RFC3339)
	good := fmt.Sprintf(`{"name":%%q,"state":"starting","vmm":"firecracker","pid":0,"created":%q%%s}`, created)
	tests := []struct {
		name, content string
		mode          os.FileMode
	}{
		{"garbage", "{not json", 0o600},
		{"unknownfield", fmt.Sprintf(good, "unknownfield", `,"config":{"firecracker_bin":"/tmp/evil"}`), 0o600},
		{"badstate", strings.Replace(fmt.Sprintf(good, "badstate", ""), "starting", "rm -rf", 1), 0o600},
		{"othername", fmt.Sprintf(good, "someoneelse", ""), 0o600},
		{"badid", fmt.Sprintf(good, "badid", `,"id":"../../etc"`), 0o600},
		{"worldwritable", fmt.Sprintf(good, "worldwritable", ""), 0o666},
		{"empty", "", 0o600},
	}
	for _, tt := range tests {
		h.plant(t, tt.name, tt.content, tt.mode)
	}
	res := h.run(nil, "ls")
	if res.code != 0 {
		t.Fatalf("ls: code %d, stderr %q", res.code, res.stderr)
	}
	for _, tt := range tests {
		if !regexpLine(res.stdout, tt.name, "corrupt") {
			t.Errorf("ls does not list %s as corrupt:\n%s", tt.name, res.stdout)
		}
	}
	if res := h.run(nil, "exec", "garbage", "--", "true"); res.code != 1 || !strings.Contains(res.stderr, "corrupt") {
		t.Errorf("exec into a corrupt record: code %d, stderr %q", res.code, res.stderr)
	}
	for _, tt := range tests {
		if res := h.run(nil, "rm", tt.name); res.code != 0 {
			t.Errorf("rm %s: code %d, stderr %q", tt.name, res.code, res.stderr)
		}
	}
	if res := h.run(nil, "ls"); strings.Count(res.stdout, "\n") != 1 {
		t.Errorf("ls after rm:\n%s", res.stdout)
	}
}

// TestUnsafeStateDir: a state directory other users can write, or a
// symlink, is refused with a clear error.
func TestUnsafeStateDir(t *testing.T) {
	h := newHarness(t)
	base := testutil.ShortTempDir(t)
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	target := filepath.Join(base, "target")
	os.Mkdir(target, 0o700)
	link := filepath.Join(base, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ dir, why string }{{open, "gives access to other users"}, {link, "symbolic link"}} {
		for _, args := range [][]string{{"ls"}, {"rm", "x"}, append([]string{"run", "--detach"}, h.vmFlags()...)} {
			res := h.run(nil, append([]string{"--state-dir", tt.dir}, args...)...)
			if res.code != 1 || !strings.Contains(res.stderr, "unsafe directory") || !strings.Contains(res.stderr, tt.why) {
				t.Errorf("petty --state-dir %s %v: code %d, stderr %q", tt.dir, args, res.code, res.stderr)
			}
		}
	}
}
