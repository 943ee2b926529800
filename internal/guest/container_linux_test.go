package guest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pettyvm/petty/agent"
)

// busyboxRoot returns a directory holding a static busybox as /bin/busybox
// with /bin/sh linked to it: a container root file system.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chroot and namespaces need root")
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("no busybox: apt-get install busybox-static")
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "tmp"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "ls", "cat", "tty", "stty", "sleep", "echo"} {
		if err := os.Symlink("/bin/busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "marker"), []byte("in the container\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestExecContainer(t *testing.T) {
	root := busyboxRoot(t)
	c := newTestClient(t)
	tests := []struct {
		name    string
		cmd     agent.Cmd
		wantOut string
	}{
		{name: "chroot", cmd: agent.Cmd{Args: []string{"cat", "/marker"}, Root: root, Env: []string{"PATH=/bin"}}, wantOut: "in the container\n"},
		{name: "chroot dir", cmd: agent.Cmd{Args: []string{"sh", "-c", "pwd; ls"}, Root: root, Dir: "/bin", Env: []string{"PATH=/bin"}}, wantOut: "/bin\nbusybox\ncat\necho\nls\nsh\nsleep\nstty\ntty\n"},
		{name: "pid namespace", cmd: agent.Cmd{Args: []string{"sh", "-c", "echo $$"}, Root: root, NewNamespaces: true, Env: []string{"PATH=/bin"}}, wantOut: "1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			cmd := tt.cmd
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := c.Exec(testContext(t), &cmd); err != nil {
				t.Fatalf("Exec: %v (stderr %q)", err, errOut.String())
			}
			if out.String() != tt.wantOut {
				t.Errorf("stdout %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

func TestExecContainerErrors(t *testing.T) {
	root := busyboxRoot(t)
	c := newTestClient(t)
	for _, cmd := range []agent.Cmd{
		{Args: []string{"true"}, Root: "relative"},
		{Args: []string{"true"}, Root: filepath.Join(root, "missing")},
		{Args: []string{"sh"}, Root: root, Dir: "/missing", Env: []string{"PATH=/bin"}},
	} {
		var ee *agent.ExitError
		if err := c.Exec(testContext(t), &cmd); err == nil || errors.As(err, &ee) {
			t.Errorf("Exec(%+v) = %v, want a start error", cmd, err)
		}
	}
}

func TestExecTTY(t *testing.T) {
	root := busyboxRoot(t)
	c := newTestClient(t)
	resize := make(chan agent.WindowSize, 1)
	resize <- agent.WindowSize{Rows: 33, Cols: 77}
	var out bytes.Buffer
	// The sleep lets the resize arrive before stty reads the size.
	cmd := &agent.Cmd{
		Args: []string{"sh", "-c", "sleep 0.5; [ -t 0 ] && [ -t 1 ] && echo tty; stty size; echo err >&2"}, Root: root, TTY: true,
		Env: []string{"PATH=/bin"}, Stdout: &out, Resize: resize,
	}
	if err := c.Exec(testContext(t), cmd); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	got := strings.ReplaceAll(out.String(), "\r\n", "\n")
	lines := strings.Split(got, "\n")
	if len(lines) < 3 || lines[0] != "tty" || lines[1] != "33 77" || lines[2] != "err" {
		t.Errorf("output %q, want a tty, size 33 77 and stderr on the terminal", got)
	}
}

func TestExecTTYStdin(t *testing.T) {
	root := busyboxRoot(t)
	c := newTestClient(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// stdin stays open until the command exited: its exit, not EOF, ends it.
	defer pw.Close()
	if _, err := pw.Write([]byte("echo typed; exit 4\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = c.Exec(testContext(t), &agent.Cmd{Args: []string{"sh"}, Root: root, TTY: true, Env: []string{"PATH=/bin"}, Stdin: pr, Stdout: &out})
	var ee *agent.ExitError
	if !errors.As(err, &ee) || ee.Code != 4 {
		t.Fatalf("Exec = %v, want exit 4", err)
	}
	if !strings.Contains(out.String(), "typed\r\n") {
		t.Errorf("output %q lacks the typed command's output", out.String())
	}
}
