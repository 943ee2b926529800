package sandbox_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/sandbox"
)

func TestRunTruncates(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	// 50 MB of output: only the cap comes back, flagged.
	res, err := s.Run(t.Context(), sandbox.RunOptions{
		Args:      []string{"sh", "-c", "head -c 50000000 /dev/zero; echo done >&2"},
		MaxOutput: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Stdout)+len(res.Stderr) > 1<<20 || len(res.Stdout) == 0 {
		t.Errorf("Truncated=%v stdout %d stderr %d bytes, want truncated at 1 MiB", res.Truncated, len(res.Stdout), len(res.Stderr))
	}
	// The sandbox still works.
	res, err = s.Run(t.Context(), sandbox.RunOptions{Args: []string{"echo", "ok"}})
	if err != nil || string(res.Stdout) != "ok\n" || res.Truncated {
		t.Errorf("after the flood: %+v %v", res, err)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	// The command's child (a grandchild of the agent) must die too.
	res, err := s.Run(t.Context(), sandbox.RunOptions{
		Args:    []string{"sh", "-c", `sleep 60 & echo $! > "$0"; wait`, pidFile},
		Timeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Errorf("TimedOut = false: %+v", res.ExitStatus)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for !gone(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // the zombie is reaped by init
	}
	if !gone(pid) {
		if st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); !bytes.Contains(st, []byte(") Z ")) {
			t.Errorf("the command's child %d outlived its timeout", pid)
		}
	}
}

func TestCancelKillsCommand(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	pidFile := filepath.Join(t.TempDir(), "pid")
	done := make(chan error, 1)
	cctx, cancel := contextWithCancel(t)
	go func() {
		_, err := s.Run(cctx, sandbox.RunOptions{Args: []string{"sh", "-c", `echo $$ > "$0"; exec sleep 60`, pidFile}})
		done <- err
	}()
	pid := waitPIDFile(t, pidFile)
	cancel()
	if err := <-done; err == nil {
		t.Error("cancelled Run returned no error")
	}
	waitGone(t, pid)
}

func TestConcurrentCalls(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	began := time.Now()
	var wg sync.WaitGroup
	for _, d := range []string{"1", "1.5"} {
		wg.Go(func() {
			if _, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"sleep", d}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(began); el > 2400*time.Millisecond {
		t.Errorf("sleep 1 and sleep 1.5 together took %v: not concurrent", el)
	}
}

func TestBackgroundProcess(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	pidFile := filepath.Join(t.TempDir(), "pid")
	pid, err := s.Start(t.Context(), sandbox.StartOptions{
		Args:       []string{"sh", "-c", `echo $$ > "$0"; head -c 5000 /dev/zero | tr '\0' a; echo; echo err >&2; exec sleep 60`, pidFile},
		BufferSize: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	guestPID := waitPIDFile(t, pidFile)
	var pi sandbox.ProcessInfo
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pi, err = s.Process(pid); err != nil {
			t.Fatal(err)
		}
		if string(pi.Stderr) == "err\n" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !pi.Running || len(pi.Stdout) != 1000 || pi.StdoutDropped != 4001 || string(pi.Stderr) != "err\n" {
		t.Errorf("Process = running %v stdout %d (dropped %d) stderr %q", pi.Running, len(pi.Stdout), pi.StdoutDropped, pi.Stderr)
	}
	if err := s.Kill(t.Context(), pid); err != nil {
		t.Fatal(err)
	}
	if pi, _ = s.Process(pid); pi.Running {
		t.Error("still running after Kill")
	}
	waitGone(t, guestPID)
	if _, err := s.Process(99); !errors.Is(err, sandbox.ErrNoProcess) {
		t.Errorf("Process(99): %v", err)
	}
	// A background process ends with its sandbox. (In a real guest the
	// VMM's death ends every guest process; the fake's "guest" runs on the
	// host, where the agent's kill may lose the race with its own death:
	// the test kills what it started.)
	pidFile2 := filepath.Join(t.TempDir(), "pid")
	pid2, err := s.Start(t.Context(), sandbox.StartOptions{Args: []string{"sh", "-c", `echo $$ > "$0"; exec sleep 60`, pidFile2}})
	if err != nil {
		t.Fatal(err)
	}
	guestPID = waitPIDFile(t, pidFile2)
	t.Cleanup(func() { _ = syscall.Kill(guestPID, syscall.SIGKILL) })
	if err := m.Destroy(t.Context(), s.ID()); err != nil {
		t.Fatal(err)
	}
	if pi, err := s.Process(pid2); err != nil || pi.Running || pi.Err == nil {
		t.Errorf("after Destroy: %+v, %v; want ended with an error", pi, err)
	}
}

func TestFiles(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	ctx := t.Context()
	dir := t.TempDir() // the fake's "guest" is the host
	p := filepath.Join(dir, "a/b/c.txt")
	data := []byte("hello\x00\xff")
	if err := s.WriteFile(ctx, p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadFile(ctx, p, 1024); err != nil || !bytes.Equal(got, data) {
		t.Errorf("ReadFile = %q, %v", got, err)
	}
	if _, err := s.ReadFile(ctx, p, 4); !errors.Is(err, sandbox.ErrTooLarge) {
		t.Errorf("ReadFile over the limit: %v", err)
	}
	if fi, err := s.Stat(ctx, p); err != nil || fi.Size != int64(len(data)) || fi.Mode.Perm() != 0o640 {
		t.Errorf("Stat = %+v, %v", fi, err)
	}
	q := filepath.Join(dir, "a/moved.txt")
	if err := s.Move(ctx, p, q); err != nil {
		t.Fatal(err)
	}
	ents, err := s.ListDir(ctx, filepath.Join(dir, "a"))
	if err != nil || len(ents) != 2 || ents[0].Name != "b" || !ents[0].IsDir || ents[1].Name != "moved.txt" {
		t.Errorf("ListDir = %+v, %v", ents, err)
	}
	if err := s.Remove(ctx, q, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, q); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after Remove: %v", err)
	}
	if err := s.Remove(ctx, q, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a missing file: %v", err)
	}
	if err := s.Remove(ctx, filepath.Join(dir, "a"), true); err != nil {
		t.Fatal(err)
	}
	// A name that a shell would expand stays a name.
	odd := filepath.Join(dir, "$(touch pwned); x")
	if err := s.WriteFile(ctx, odd, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Move(ctx, odd, odd+"2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(odd + "2"); err != nil {
		t.Errorf("moved odd name: %v", err)
	}
	if _, err := s.ReadFile(ctx, filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile missing: %v", err)
	}
}

func TestRunCode(t *testing.T) {
	m := fakeManager(t, sandbox.Config{})
	s := create(t, m, sandbox.Options{})
	big := strings.Repeat("# padding past the argv limit\n", 10000) // 290 KB
	tests := []struct{ lang, code, want string }{
		{"sh", big + "echo from sh", "from sh\n"},
		{"bash", "echo from bash", "from bash\n"},
		{"python", big + "print('from python')", "from python\n"},
		{"node", "console.log('from node')", "from node\n"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			if tt.lang == "python" {
				if _, err := exec.LookPath("python3"); err != nil {
					t.Skip("python3 not installed on the host (the fake's guest): apt-get install python3")
				}
			}
			if tt.lang == "node" {
				if _, err := exec.LookPath("node"); err != nil {
					t.Skip("node not installed on the host (the fake's guest): apt-get install nodejs")
				}
			}
			res, err := s.RunCode(t.Context(), tt.lang, tt.code, sandbox.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Stdout) != tt.want || res.ExitCode != 0 {
				t.Errorf("stdout %q stderr %q code %d", res.Stdout, res.Stderr, res.ExitCode)
			}
		})
	}
	if _, err := s.RunCode(t.Context(), "cobol", "x", sandbox.RunOptions{}); !errors.Is(err, sandbox.ErrInvalid) {
		t.Errorf("unknown language: %v", err)
	}
	if ents, _ := os.ReadDir(sandbox.CodeDir); len(ents) != 0 {
		t.Errorf("code files left in %s: %d", sandbox.CodeDir, len(ents))
	}
}
