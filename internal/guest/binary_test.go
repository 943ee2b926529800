package guest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/internal/retry"
)

// TestBinaryShutdownInNamespace runs the real petty-agent binary as PID 1 of
// fresh PID and mount namespaces, which takes the guest-init code paths
// (mounts, reaper, Shutdown) with the host protected: mounts stay in the
// private mount namespace, and powerOff refuses outside the initial PID
// namespace (reboot(2) there would only end the namespace anyway).
func TestBinaryShutdownInNamespace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent binary")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare --pid --mount; run the tests as root")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("unshare --pid --fork --mount not permitted here (%v: %s); needs CAP_SYS_ADMIN and util-linux unshare", err, out)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "petty-agent")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/petty-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// As PID 1 the agent mounts a fresh tmpfs on /tmp (and /run) when they
	// are not mount points, so the socket must live elsewhere.
	sockDir, err := os.MkdirTemp("/var/tmp", "petty-agent-test")
	if err != nil {
		if sockDir, err = os.MkdirTemp(".", "petty-agent-test"); err != nil {
			t.Fatal(err)
		}
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "agent.sock")
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--propagation", "private",
		bin, "--listen", "unix://"+sock)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	reaped := false
	defer func() {
		if !reaped {
			cmd.Process.Kill() // unshare; --kill-child takes the agent along
			<-exited
		}
	}()

	var conn net.Conn
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := retry.Do(dctx, retry.Backoff{Min: time.Millisecond, Max: 20 * time.Millisecond}, func(context.Context) error {
		var err error
		conn, err = dialAuth(sock, "")
		return err
	}); err != nil {
		t.Fatalf("agent did not listen: %v", err)
	}
	c := agent.NewClient(conn)
	defer c.Close()
	ctx := testContext(t)
	info, err := c.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.PID != 1 {
		t.Errorf("agent PID = %d, want 1 inside the namespace", info.PID)
	}
	// Exec through the PID 1 reaper.
	if out, err := c.Output(ctx, "sh", "-c", "sleep 0.01 & echo $((6*7))"); err != nil || string(out) != "42\n" {
		t.Errorf("Output = %q, %v", out, err)
	}
	if err := c.Shutdown(ctx, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		reaped = true
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		if err != nil {
			t.Fatalf("agent exited with %v, want a clean exit", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not exit after Shutdown")
	}
}
