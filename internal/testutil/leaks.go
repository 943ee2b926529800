package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Child is a process whose parent is the test process.
type Child struct {
	PID   int
	State string // the state letter of /proc/<pid>/stat: R, S, D, T, Z, ...
	Comm  string
}

// String describes the child for test failure messages.
func (c Child) String() string { return fmt.Sprintf("pid %d (%s) state %s", c.PID, c.Comm, c.State) }

// Children lists the test process's children, zombies included, by scanning
// /proc/*/stat for a parent pid equal to os.Getpid().
func Children() ([]Child, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []Child
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		c, ppid, ok := parseStat(pid, string(b))
		if ok && ppid == self {
			out = append(out, c)
		}
	}
	return out, nil
}

// Alive reports whether process pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	c, _, ok := parseStat(pid, string(b))
	return ok && c.State != "Z"
}

// parseStat reads comm, state and ppid from a /proc/<pid>/stat line; comm
// may hold spaces and parentheses, so it ends at the last ')'.
func parseStat(pid int, s string) (Child, int, bool) {
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Child{}, 0, false
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return Child{}, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return Child{}, 0, false
	}
	return Child{PID: pid, State: f[0], Comm: s[open+1 : end]}, ppid, true
}

// CheckNoChildren fails tb if the test process has a child that is not a
// zombie: a process a test started and did not stop.
func CheckNoChildren(tb testing.TB) {
	tb.Helper()
	kids, err := Children()
	if err != nil {
		tb.Fatalf("testutil: listing children: %v", err)
	}
	for _, c := range kids {
		if c.State != "Z" {
			tb.Errorf("testutil: leaked child process: %v", c)
		}
	}
}

// OpenFDs returns the number of open file descriptors of the test process
// (entries of /proc/self/fd, not counting the one used to read it). Compare
// it before and after the code under test.
func OpenFDs(tb testing.TB) int {
	tb.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatalf("testutil: reading /proc/self/fd: %v", err)
	}
	return len(entries) - 1
}

// CheckFDs fails tb when the process has more open file descriptors than
// before (a count from [OpenFDs]). Descriptors closed asynchronously get a
// moment to go first.
func CheckFDs(tb testing.TB, before int) {
	tb.Helper()
	var now int
	for range 50 {
		if now = OpenFDs(tb); now <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Errorf("testutil: %d file descriptors leaked (%d before, %d after)", now-before, before, now)
}
