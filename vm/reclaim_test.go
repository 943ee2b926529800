package vm_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/pidfd"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// TestReclaimOwnerHelper is the owner process of TestReclaim: with
// PETTY_TEST_OWNER_CONFIG set it creates the Machine described there, prints
// its run directory and VMM pid, and blocks until killed.
func TestReclaimOwnerHelper(t *testing.T) {
	cfgJSON := os.Getenv("PETTY_TEST_OWNER_CONFIG")
	if cfgJSON == "" {
		t.Skip("helper process of TestReclaim")
	}
	var cfg vm.Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		t.Fatal(err)
	}
	m, err := vm.Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s %d\n", m.RunDir(), m.PID())
	select {}
}

// startOwner runs TestReclaimOwnerHelper and returns it with the run
// directory and VMM pid it reported.
func startOwner(t *testing.T, cfg vm.Config) (*exec.Cmd, string, int) {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command(os.Args[0], "-test.run=^TestReclaimOwnerHelper$")
	c.Env = append(os.Environ(), "PETTY_TEST_OWNER_CONFIG="+string(data))
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		t.Fatalf("owner helper: %v", err)
	}
	dir, pid, _ := strings.Cut(strings.TrimSpace(line), " ")
	vmmPID, _ := strconv.Atoi(pid)
	return c, dir, vmmPID
}

// TestReclaim: the run directory of an owner killed with SIGKILL is
// reclaimed (VMM killed, directory removed); that of a live owner is not.
func TestReclaim(t *testing.T) {
	cfg := fakeConfig(t)
	root := cfg.RunDir
	owner, deadDir, vmmPID := startOwner(t, cfg)
	if err := owner.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = owner.Wait()

	live, err := vm.Create(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Destroy(t.Context())

	removed, err := vm.Reclaim(root)
	if err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	if want := []string{deadDir}; !slices.Equal(removed, want) {
		t.Errorf("Reclaim removed %v, want %v", removed, want)
	}
	if testutil.Alive(vmmPID) {
		t.Errorf("the dead owner's VMM %d still runs", vmmPID)
		_ = syscall.Kill(vmmPID, syscall.SIGKILL)
	}
	if _, err := os.Stat(deadDir); !os.IsNotExist(err) {
		t.Errorf("%s still there (%v)", deadDir, err)
	}
	if live.State() != vm.Running {
		t.Errorf("the live owner's VM is %v", live.State())
	}
	if _, err := os.Stat(filepath.Join(live.RunDir(), "machine.json")); err != nil {
		t.Errorf("live VM's run dir: %v", err)
	}
}

// TestReclaimUnexpectedForms plants entries Reclaim must leave alone, and
// a record whose "VMM" is an unrelated process.
func TestReclaimUnexpectedForms(t *testing.T) {
	root := filepath.Join(testutil.ShortTempDir(t), "run")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * vm.ReclaimGrace)
	victim := t.TempDir()
	if err := os.WriteFile(filepath.Join(victim, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A symlink named like a VM: never followed, never removed.
	link := filepath.Join(root, "1111111111111111")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	// A directory that is not named like a VM.
	other := mk("not-a-vm")
	os.Chtimes(other, old, old)
	// A fresh directory without an owner record (a VM being created).
	fresh := mk("2222222222222222")
	// An old directory without an owner record: reclaimed.
	stale := mk("3333333333333333")
	os.Chtimes(stale, old, old)
	// A regular file named like a VM.
	file := filepath.Join(root, "4444444444444444")
	os.WriteFile(file, nil, 0o600)
	// A dead owner whose record names an unrelated live process as its
	// VMM: the directory goes, the process stays.
	sleeper := exec.Command("sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }()
	dead := exec.Command("true")
	if err := dead.Start(); err != nil {
		t.Fatal(err)
	}
	deadPID := dead.Process.Pid
	_ = dead.Wait()
	sleepStart, err := pidfd.StartTime(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	planted := mk("5555555555555555")
	rec := fmt.Sprintf(`{"version":1,"id":"5555555555555555","vmm":"qemu","vmm_pid":%d,"vmm_start":%d,"owner_pid":%d,"owner_start":1,"api_socket":"qmp.sock"}`,
		sleeper.Process.Pid, sleepStart, deadPID)
	if err := os.WriteFile(filepath.Join(planted, "machine.json"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}

	removed, err := vm.Reclaim(root)
	if err != nil {
		t.Fatalf("Reclaim: %v", err)
	}
	slices.Sort(removed)
	if want := []string{stale, planted}; !slices.Equal(removed, want) {
		t.Errorf("Reclaim removed %v, want %v", removed, want)
	}
	for _, p := range []string{link, other, fresh, file, filepath.Join(victim, "precious")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if !testutil.Alive(sleeper.Process.Pid) {
		t.Error("Reclaim killed an unrelated process named by a record")
	}
}

func TestReclaimRefusesUnsafeRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "run")
	os.Mkdir(root, 0o777)
	os.Chmod(root, 0o777)
	if _, err := vm.Reclaim(root); err == nil {
		t.Error("Reclaim of a world-writable root succeeded")
	}
	if got, err := vm.Reclaim(filepath.Join(t.TempDir(), "missing")); err != nil || got != nil {
		t.Errorf("Reclaim of a missing root = %v, %v", got, err)
	}
}
