package vm

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/testutil"
)

// qemuConfig returns a Config that boots the test image under QEMU with TCG
// (1 vCPU, 256 MiB, no root drive: the agent runs from the initramfs), in a
// short private run directory. It skips the test when QEMU or the Debian
// cloud kernel is missing.
func qemuConfig(t *testing.T) Config {
	t.Helper()
	img := testutil.GuestImage(t)
	return Config{
		VMM:       QEMU,
		Accel:     "tcg",
		VCPUs:     1,
		MemoryMiB: 256,
		Kernel:    img.Kernel,
		Initrd:    img.Initrd,
		RunDir:    filepath.Join(testutil.ShortTempDir(t), "run"),
	}
}

// startQEMU creates and starts m, registers its destruction and the
// leftover checks, and returns it with an agent client once the agent
// answered.
func startQEMU(t *testing.T, cfg Config) (*Machine, *agent.Client) {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, m) })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	began := time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c := waitAgent(t, m)
	t.Logf("QEMU/TCG boot to agent ready: %v", time.Since(began).Round(time.Millisecond))
	return m, c
}

// waitAgent returns a client of m's agent, closed when the test ends.
func waitAgent(t *testing.T, m *Machine) *agent.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := m.Agent(ctx)
	if err != nil {
		t.Fatalf("Agent: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// destroyAndCheck destroys m and checks that nothing is left: no VMM
// process (by PID), no sockets, no run directory.
func destroyAndCheck(t *testing.T, m *Machine) {
	t.Helper()
	pid := m.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Destroy(ctx); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	checkQEMUGone(t, m, pid)
}

// checkQEMUGone checks that the VMM pid (if any) is gone and that m's run
// directory does not exist.
func checkQEMUGone(t *testing.T, m *Machine, pid int) {
	t.Helper()
	if pid != 0 {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("qemu pid %d still exists", pid)
		}
	}
	if _, err := os.Stat(m.RunDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir %s still exists (err=%v)", m.RunDir(), err)
	}
}

// checkNoSockets checks that the run directory of a stopped m holds no
// socket.
func checkNoSockets(t *testing.T, m *Machine) {
	t.Helper()
	for _, name := range []string{qmpSocketName, agentSocketName} {
		if _, err := os.Lstat(filepath.Join(m.RunDir(), name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after the VMM exited (err=%v)", name, err)
		}
	}
}

// run runs a command in the guest and returns its stdout; a failure fails
// the test with stderr.
func run(t *testing.T, c *agent.Client, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := c.Exec(ctx, &agent.Cmd{Args: args, Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("guest %q: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// shutdown stops m gracefully and checks that QEMU exited with status 0
// and removed its sockets.
func shutdown(t *testing.T, m *Machine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	pid := m.PID()
	began := time.Now()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	t.Logf("graceful shutdown took %v", time.Since(began).Round(time.Millisecond))
	if err := m.Wait(ctx); err != nil {
		t.Errorf("Wait after a graceful shutdown = %v, want exit status 0", err)
	}
	if m.State() != Stopped {
		t.Errorf("state after Shutdown = %v, want stopped", m.State())
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("qemu pid %d still exists after Shutdown", pid)
	}
	checkNoSockets(t, m)
}

func TestQEMUBoot(t *testing.T) {
	cfg := qemuConfig(t)
	m, c := startQEMU(t, cfg)
	ctx := t.Context()
	info, err := c.Ping(ctx)
	if err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if info.PID != 1 {
		t.Errorf("agent pid = %d, want 1 (init of the guest)", info.PID)
	}
	out := run(t, c, "uname", "-a")
	if !strings.HasPrefix(out, "Linux ") {
		t.Errorf("uname -a = %q", out)
	}
	t.Logf("guest: %s", strings.TrimSpace(out))

	if err := m.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := m.Resume(ctx); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping after Resume: %v", err)
	}
	shutdown(t, m)
}

// makeExt4 creates an ext4 image of sizeMiB at path holding files.
func makeExt4(t *testing.T, path string, sizeMiB int, files map[string]string) {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not found: apt-get install e2fsprogs")
	}
	src := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(mkfs, "-q", "-F", "-d", src, path, strconv.Itoa(sizeMiB)+"M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
}

// TestQEMUDrives writes to a data drive in one VM and reads it back in the
// next one and across Stop/Start of the same Machine; a read-only drive
// refuses writes.
func TestQEMUDrives(t *testing.T) {
	cfg := qemuConfig(t)
	dir := t.TempDir()
	data, ro := filepath.Join(dir, "data.ext4"), filepath.Join(dir, "ro.ext4")
	makeExt4(t, data, 32, nil)
	makeExt4(t, ro, 8, map[string]string{"hello": "read-only drive\n"})
	cfg.Drives = []Drive{{ID: "data", Path: data}, {ID: "ro", Path: ro, ReadOnly: true}}

	// The drives appear in Config order: vda, vdb (root=/dev/vda relies on it).
	const (
		mountData = "mkdir -p /data && mount -t ext4 /dev/vda /data"
		mountRO   = "mkdir -p /ro && mount -t ext4 -o ro /dev/vdb /ro"
	)
	m1, c1 := startQEMU(t, cfg)
	run(t, c1, "sh", "-c", mountData+" && echo one > /data/f")
	if got := run(t, c1, "cat", "/sys/block/vda/size", "/sys/block/vdb/size", "/sys/block/vda/ro", "/sys/block/vdb/ro"); got != "65536\n16384\n0\n1\n" {
		t.Errorf("vda/vdb sizes (sectors) and ro flags = %q, want the data drive (32 MiB, rw) then the read-only one (8 MiB, ro)", got)
	}
	if got := run(t, c1, "sh", "-c", mountRO+" && cat /ro/hello"); got != "read-only drive\n" {
		t.Errorf("read-only drive content = %q", got)
	}
	got := run(t, c1, "sh", "-c", "echo x > /dev/vdb && echo wrote || echo refused; touch /ro/new && echo wrote || echo refused")
	if got != "refused\nrefused\n" {
		t.Errorf("writes to the read-only drive: %q, want both refused", got)
	}
	shutdown(t, m1) // unsynced: the agent syncs before powering off

	m2, c2 := startQEMU(t, cfg)
	if got := run(t, c2, "sh", "-c", mountData+" && cat /data/f && echo two >> /data/f"); got != "one\n" {
		t.Errorf("data written by the previous VM = %q, want %q", got, "one\n")
	}
	shutdown(t, m2)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m2.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	c2 = waitAgent(t, m2)
	if got := run(t, c2, "sh", "-c", mountData+" && cat /data/f"); got != "one\ntwo\n" {
		t.Errorf("data after Stop/Start = %q, want %q", got, "one\ntwo\n")
	}
	shutdown(t, m2)
}

// TestQEMUKill kills a running VM.
func TestQEMUKill(t *testing.T) {
	m, _ := startQEMU(t, qemuConfig(t))
	pid := m.PID()
	if err := m.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if m.State() != Stopped || m.PID() != 0 {
		t.Errorf("after Kill: state %v, pid %d", m.State(), m.PID())
	}
	var exit *ExitError
	if err := m.Wait(t.Context()); !errors.As(err, &exit) || exit.State.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("Wait after Kill = %v, want an *ExitError for SIGKILL", err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("qemu pid %d still exists after Kill", pid)
	}
	checkNoSockets(t, m)
}

// TestQEMUCancelledBoot ends Start's context while QEMU starts, and the
// Agent call's while the guest boots.
func TestQEMUCancelledBoot(t *testing.T) {
	cfg := qemuConfig(t)
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, m) })

	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	err = m.Start(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with an expiring ctx = %v, want DeadlineExceeded", err)
	}
	if m.State() != Stopped || m.PID() != 0 {
		t.Errorf("after a cancelled Start: state %v, pid %d", m.State(), m.PID())
	}
	checkNoSockets(t, m)

	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("Start after a cancelled one: %v", err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 300*time.Millisecond)
	_, err = m.Agent(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Agent during the guest's boot = %v, want DeadlineExceeded", err)
	}
	if m.State() != Running {
		t.Errorf("state after a cancelled Agent = %v, want running", m.State())
	}
	waitAgent(t, m) // the channel still works
}

// TestQEMUShutdownIgnored stops a guest that cannot answer: Shutdown falls
// back to SIGTERM at 3/4 of its deadline and returns by the deadline.
func TestQEMUShutdownIgnored(t *testing.T) {
	m, c := startQEMU(t, qemuConfig(t))
	c.Close()
	m.mu.Lock()
	be := m.be
	m.mu.Unlock()
	// Freeze the vCPUs behind the Machine's back: nothing in the guest can
	// see the agent's request or the power button.
	if err := be.pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	const deadline = 4 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	began := time.Now()
	err := m.Shutdown(ctx)
	took := time.Since(began)
	if err != nil {
		t.Errorf("Shutdown = %v, want nil (QEMU exits on SIGTERM)", err)
	}
	if took < deadline*3/4-100*time.Millisecond || took > deadline+500*time.Millisecond {
		t.Errorf("Shutdown took %v, want about %v (SIGTERM at 3/4 of %v)", took, deadline*3/4, deadline)
	}
	if m.State() != Stopped {
		t.Errorf("state = %v, want stopped", m.State())
	}
	checkNoSockets(t, m)
}

// TestQEMUConcurrent runs three VMs at once.
func TestQEMUConcurrent(t *testing.T) {
	cfg := qemuConfig(t)
	const n = 3
	ms := make([]*Machine, n)
	for i := range ms {
		m, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { destroyAndCheck(t, m) })
		ms[i] = m
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	clients := make([]*agent.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			if errs[i] = m.Start(ctx); errs[i] == nil {
				clients[i], errs[i] = m.Agent(ctx)
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("vm %d: %v\nconsole:\n%s", i, err, ms[i].ConsoleTail())
		}
		t.Cleanup(func() { clients[i].Close() })
	}
	for i, m := range ms {
		if m.PID() == 0 || syscall.Kill(m.PID(), 0) != nil {
			t.Errorf("vm %d: no live qemu while all three should run", i)
		}
		want := "vm" + strconv.Itoa(i) + "\n"
		if got := run(t, clients[i], "echo", strings.TrimSpace(want)); got != want {
			t.Errorf("vm %d: echo = %q, want %q", i, got, want)
		}
	}
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.Shutdown(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("vm %d: Shutdown: %v", i, err)
		}
		checkNoSockets(t, ms[i])
	}
}
