package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

func TestShortTempDir(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = ShortTempDir(t)
		if !strings.HasPrefix(dir, "/tmp/") || len(dir) > 20 {
			t.Errorf("dir %q is not short", dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Fatalf("%v %v", fi, err)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s not removed: %v", dir, err)
	}
}

func TestFakeFirecrackerBuildsOnce(t *testing.T) {
	a, b := FakeFirecracker(t), FakeFirecracker(t)
	if a != b || filepath.Base(a) != "firecracker" {
		t.Fatalf("paths %q %q", a, b)
	}
	out, err := exec.Command(a, "--version").Output()
	if err != nil || !strings.Contains(string(out), "Firecracker v1.16.1") {
		t.Fatalf("%q %v", out, err)
	}
}

func TestChildrenAndFDs(t *testing.T) {
	before := OpenFDs(t)
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kids, err := Children()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range kids {
		if k.PID == cmd.Process.Pid && k.Comm == "sleep" && k.State != "Z" {
			found = true
		}
	}
	if !found {
		t.Errorf("sleep %d not among children %v", cmd.Process.Pid, kids)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	CheckNoChildren(t)

	f, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if n := OpenFDs(t); n != before+1 {
		t.Errorf("OpenFDs %d with one more file open, want %d", n, before+1)
	}
	f.Close()
	if n := OpenFDs(t); n != before {
		t.Errorf("OpenFDs %d after closing, want %d", n, before)
	}
}

func TestParseStat(t *testing.T) {
	c, ppid, ok := parseStat(42, "42 (a) b (c)) S 7 42 42 0 -1")
	if !ok || ppid != 7 || c.Comm != "a) b (c)" || c.State != "S" {
		t.Errorf("%+v %d %v", c, ppid, ok)
	}
}

func TestAlive(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !Alive(pid) {
		t.Errorf("Alive(%d) = false for a running sleep", pid)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if Alive(pid) {
		t.Errorf("Alive(%d) = true after it was reaped", pid)
	}
}
