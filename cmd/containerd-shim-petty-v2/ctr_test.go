package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestCtr runs containers with the real ctr under a private containerd:
// the container's kernel is the guest's, exit codes and signals come back,
// stdin reaches the process, exec, pause/resume and metrics work on a
// running task, terminals work, two containers run at once, and nothing is
// left on the host afterwards.
func TestCtr(t *testing.T) {
	e := startContainerd(t, false)

	t.Run("uname", func(t *testing.T) {
		hostRel, err := exec.Command("uname", "-r").Output()
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		out, err := e.run(testCtx(t), "uname", "uname", "-r").CombinedOutput()
		if err != nil {
			t.Fatalf("ctr run: %v\n%s", err, out)
		}
		t.Logf("ctr run uname -r: %v (boot, run, shutdown)", time.Since(began).Round(time.Millisecond))
		got := strings.TrimSpace(string(out))
		if !strings.HasSuffix(got, "-cloud-amd64") || got == strings.TrimSpace(string(hostRel)) {
			t.Errorf("uname -r in the container = %q, want the guest's Debian cloud kernel (host: %q)", got, strings.TrimSpace(string(hostRel)))
		}
		waitNoLeftovers(t, e)
	})

	t.Run("limits size the VM", func(t *testing.T) {
		out, err := e.ctrCmd(testCtx(t), "run", "--rm", "--runtime", RuntimeName, "--memory-limit", "536870912", "--cpus", "1.5",
			testImage, "sized", "sh", "-c", "nproc; grep MemTotal /proc/meminfo").CombinedOutput()
		if err != nil {
			t.Fatalf("ctr run: %v\n%s", err, out)
		}
		var cpus, memKB int
		if _, err := fmt.Sscanf(string(out), "%d\nMemTotal: %d kB", &cpus, &memKB); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		// 512 MiB of guest memory less the kernel's own: over 400 MiB, under 512.
		if cpus != 2 || memKB < 400<<10 || memKB > 512<<10 {
			t.Errorf("guest has %d vCPUs and %d kB; want 2 (1.5 rounded up) and about 512 MiB", cpus, memKB)
		}
	})

	t.Run("exit code and stderr", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := e.run(testCtx(t), "exit", "sh", "-c", "echo out; echo err >&2; exit 7")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if exitCode(err) != 7 || stdout.String() != "out\n" || !strings.Contains(stderr.String(), "err\n") {
			t.Errorf("exit %d (%v), stdout %q, stderr %q; want 7, out, err", exitCode(err), err, stdout.String(), stderr.String())
		}
	})

	t.Run("stdin", func(t *testing.T) {
		cmd := e.run(testCtx(t), "stdin", "sh", "-c", "read x; echo got $x; cat")
		cmd.Stdin = strings.NewReader("hello\nrest\n")
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "got hello\nrest\n" {
			t.Errorf("ctr run = %v, output %q, want %q", err, out, "got hello\nrest\n")
		}
	})

	t.Run("signal", func(t *testing.T) {
		ctx := testCtx(t)
		cmd := e.run(ctx, "signal", "sh", "-c", `trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done`)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("first line %q, %v", line, err)
		}
		if out, err := e.ctr(ctx, "task", "kill", "-s", "SIGTERM", "signal"); err != nil {
			t.Errorf("ctr task kill: %v\n%s", err, out)
		}
		rest, _ := io.ReadAll(r)
		err = cmd.Wait()
		if exitCode(err) != 3 || string(rest) != "got-term\n" {
			t.Errorf("exit %d, output %q; want 3 and the trap's output", exitCode(err), rest)
		}
		// Without a handler, SIGKILL: 128+9.
		cmd = e.run(ctx, "sigkill", "sh", "-c", "echo ready; exec sleep 1000")
		stdout, _ = cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
			t.Errorf("first line %q, %v", line, err)
		}
		if out, err := e.ctr(ctx, "task", "kill", "-s", "SIGKILL", "sigkill"); err != nil {
			t.Errorf("ctr task kill: %v\n%s", err, out)
		}
		if err := cmd.Wait(); exitCode(err) != 137 {
			t.Errorf("exit %d (%v), want 137", exitCode(err), err)
		}
	})

	t.Run("exec pause metrics", func(t *testing.T) {
		ctx := testCtx(t)
		if out, err := e.ctr(ctx, "run", "-d", "--runtime", RuntimeName, testImage, "bg", "sleep", "1000"); err != nil {
			t.Fatalf("ctr run -d: %v\n%s", err, out)
		}
		out, err := e.ctr(ctx, "task", "exec", "--exec-id", "x1", "bg", "sh", "-c", "cat /etc/hostname 2>/dev/null; echo in-exec; ls /bin/busybox; exit 4")
		if exitCode(err) != 4 || !strings.Contains(out, "in-exec\n/bin/busybox\n") {
			t.Errorf("ctr task exec = %d (%v), output %q; want 4 and the container's files", exitCode(err), err, out)
		}
		if out, err := e.ctr(ctx, "task", "exec", "--exec-id", "x2", "bg", "sh", "-c", "read x; echo exec-got $x"); err != nil || out != "" {
			// stdin of ctr here is empty: read fails, prints "exec-got".
			if !strings.Contains(out, "exec-got") {
				t.Errorf("ctr task exec with stdin: %v, %q", err, out)
			}
		}
		if out, err := e.ctr(ctx, "task", "pause", "bg"); err != nil {
			t.Errorf("pause: %v\n%s", err, out)
		}
		if out, _ := e.ctr(ctx, "task", "ls"); !strings.Contains(out, "PAUSED") {
			t.Errorf("task ls after pause:\n%s", out)
		}
		if out, err := e.ctr(ctx, "task", "resume", "bg"); err != nil {
			t.Errorf("resume: %v\n%s", err, out)
		}
		out, err = e.ctr(ctx, "task", "metrics", "bg")
		if err != nil || !strings.Contains(out, "memory.usage_limit") || !strings.Contains(out, "cpu.usage_usec") {
			t.Errorf("metrics: %v\n%s", err, out)
		}
		// The exec joins the container's PID namespace and sees its /proc:
		// PID 1 is the container's process.
		out, err = e.ctr(ctx, "task", "exec", "--exec-id", "x3", "--cwd", "/bin", "bg", "sh", "-c", "pwd; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps | wc -l")
		if err != nil || !strings.HasPrefix(out, "/bin\nsleep 1000 \n") {
			t.Errorf("exec in the container's namespaces = %v, %q; want cwd /bin and PID 1 sleep", err, out)
			mi, _ := e.ctr(ctx, "task", "exec", "--exec-id", "x4", "bg", "cat", "/proc/self/mountinfo")
			t.Logf("the exec's mounts:\n%s", mi)
		}
		// An exec's own Kill: a signal to the exec, its exit status back.
		long := e.ctrCmd(ctx, "task", "exec", "--exec-id", "x5", "bg", "sh", "-c", "echo ready; exec sleep 1000")
		longOut, _ := long.StdoutPipe()
		if err := long.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(longOut).ReadString('\n'); err != nil || line != "ready\n" {
			t.Errorf("exec's first line %q, %v", line, err)
		}
		if out, err := e.ctr(ctx, "task", "kill", "--exec-id", "x5", "-s", "SIGTERM", "bg"); err != nil {
			t.Errorf("task kill --exec-id: %v\n%s", err, out)
		}
		if err := long.Wait(); exitCode(err) != 143 {
			t.Errorf("killed exec exited %d (%v), want 143", exitCode(err), err)
		}
		if out, err := e.ctr(ctx, "task", "ps", "bg"); err != nil || len(strings.Fields(out)) < 3 {
			t.Errorf("task ps: %v\n%s", err, out)
		}
		if out, err := e.ctr(ctx, "task", "delete", "-f", "bg"); err != nil {
			t.Errorf("task delete -f: %v\n%s", err, out)
		}
		if out, err := e.ctr(ctx, "containers", "delete", "bg"); err != nil {
			t.Errorf("containers delete: %v\n%s", err, out)
		}
		waitNoLeftovers(t, e)
	})

	t.Run("VM dies", func(t *testing.T) {
		ctx := testCtx(t)
		if out, err := e.ctr(ctx, "run", "-d", "--runtime", RuntimeName, testImage, "doomed", "sleep", "1000"); err != nil {
			t.Fatalf("ctr run -d: %v\n%s", err, out)
		}
		// The pod's QEMU is the one whose virtio-fs socket is in its
		// directory.
		sock := filepath.Join(stateRoot, e.ns+"-doomed", "fs.sock")
		b, err := exec.Command("pgrep", "-f", "qemu-system-x86_64.*path="+sock).Output()
		pids := strings.Fields(string(b))
		if err != nil || len(pids) != 1 {
			t.Fatalf("pgrep for the pod's QEMU: %v, %q", err, b)
		}
		pid, _ := strconv.Atoi(pids[0])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var out string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if out, _ = e.ctr(ctx, "task", "ls"); strings.Contains(out, "STOPPED") {
				break
			}
		}
		if !strings.Contains(out, "doomed") || !strings.Contains(out, "STOPPED") {
			t.Errorf("task ls after the VM died:\n%s", out)
		}
		// ctr warns of a non-zero exit status.
		if out, err := e.ctr(ctx, "task", "delete", "doomed"); err != nil || !strings.Contains(out, "exit code 255") {
			t.Errorf("task delete = %v, %q; want exit code 255", err, out)
		}
		e.ctr(ctx, "containers", "delete", "doomed")
		waitNoLeftovers(t, e)
	})

	t.Run("shim dies", func(t *testing.T) {
		ctx := testCtx(t)
		if out, err := e.ctr(ctx, "run", "-d", "--runtime", RuntimeName, testImage, "orphan", "sleep", "1000"); err != nil {
			t.Fatalf("ctr run -d: %v\n%s", err, out)
		}
		b, err := exec.Command("pgrep", "-f", "containerd-shim-petty-v2 -namespace "+e.ns+" -id orphan -address "+e.sock).Output()
		pids := strings.Fields(string(b))
		if err != nil || len(pids) != 1 {
			t.Fatalf("pgrep for the shim: %v, %q", err, b)
		}
		pid, _ := strconv.Atoi(pids[0])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// containerd runs the shim's delete: the VM, virtiofsd, mounts and
		// directories go.
		waitNoLeftovers(t, e)
		e.ctr(ctx, "task", "delete", "orphan")
		e.ctr(ctx, "containers", "delete", "orphan")
	})

	t.Run("terminal", func(t *testing.T) {
		if _, err := exec.LookPath("script"); err != nil {
			t.Skip("no script(1): apt-get install util-linux")
		}
		ctx := testCtx(t)
		// script gives ctr a terminal (ctr run -t needs one) of 40x100.
		cmd := exec.CommandContext(ctx, "script", "-qfec", fmt.Sprintf(
			"stty rows 40 cols 100; ctr -a %s -n %s run --rm -t --runtime %s %s tty sh", e.sock, e.ns, RuntimeName, testImage), "/dev/null")
		stdin, _ := cmd.StdinPipe()
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for !strings.Contains(out.String(), "# ") { // the shell's prompt
			if ctx.Err() != nil {
				t.Fatalf("no prompt: %q", out.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		io.WriteString(stdin, "[ -t 0 ] && echo is-a-tty; stty size; exit 6\r")
		err := cmd.Wait()
		got := out.String()
		if exitCode(err) != 6 || !strings.Contains(got, "is-a-tty") || !strings.Contains(got, "40 100") {
			t.Errorf("exit %d (%v), output %q; want 6, a tty of 40x100", exitCode(err), err, got)
		}
	})

	t.Run("two at once", func(t *testing.T) {
		var wg sync.WaitGroup
		outs := make([]string, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Go(func() {
				b, err := e.run(testCtx(t), fmt.Sprintf("two%d", i), "sh", "-c", fmt.Sprintf("sleep 1; echo c%d; uname -r", i)).CombinedOutput()
				outs[i], errs[i] = string(b), err
			})
		}
		wg.Wait()
		for i := range 2 {
			if errs[i] != nil || !strings.HasPrefix(outs[i], fmt.Sprintf("c%d\n", i)) || !strings.Contains(outs[i], "cloud-amd64") {
				t.Errorf("container %d: %v, %q", i, errs[i], outs[i])
			}
		}
		waitNoLeftovers(t, e)
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
