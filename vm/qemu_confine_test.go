package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/qemu"
)

// procStatus returns the value of field (e.g. "Seccomp") in
// /proc/<pid>/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s field", pid, field)
	return ""
}

// TestQEMUSeccomp boots a real guest: QEMU runs under its seccomp filter
// (Seccomp: 2, filter mode) and the guest still boots and runs a command.
func TestQEMUSeccomp(t *testing.T) {
	cfg := qemuConfig(t)
	if !qemu.SandboxSupported(cfg.withDefaults().QEMUBin) {
		t.Skip("this QEMU build has no -sandbox (built without seccomp): install Debian's qemu-system-x86")
	}
	m, c := startQEMU(t, cfg)
	if got := procStatus(t, m.PID(), "Seccomp"); got != "2" {
		t.Errorf("QEMU's Seccomp mode = %s, want 2 (filter)", got)
	}
	if got := run(t, c, "echo", "confined"); got != "confined\n" {
		t.Errorf("guest echo printed %q", got)
	}
	shutdown(t, m)
}

// requireVhostVsock skips the test unless /dev/vhost-vsock is usable.
func requireVhostVsock(t *testing.T) {
	t.Helper()
	if !qemu.VhostVsockAvailable() {
		t.Skip("needs /dev/vhost-vsock (modprobe vhost_vsock)")
	}
}

// TestQEMUVhostVsockCIDs boots two guests with vsock and CID 0: each gets
// its own CID and its agent answers over vhost-vsock; a third VM asking for
// the first one's CID fails with ErrCIDInUse.
func TestQEMUVhostVsockCIDs(t *testing.T) {
	requireVhostVsock(t)
	cfg := qemuConfig(t)
	cfg.Vsock = &Vsock{}
	m1, c1 := startQEMU(t, cfg)
	m2, c2 := startQEMU(t, cfg)
	cid1, cid2 := m1.be.(*qemuBackend).spec.VsockCID, m2.be.(*qemuBackend).spec.VsockCID
	if cid1 == 0 || cid2 == 0 || cid1 == cid2 {
		t.Errorf("CIDs %d and %d, want two different ones", cid1, cid2)
	}
	run(t, c1, "true")
	run(t, c2, "true")

	taken := cfg
	taken.Vsock = &Vsock{CID: cid1}
	m3, err := New(taken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, m3) })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m3.Start(ctx); !errors.Is(err, ErrCIDInUse) {
		t.Errorf("Start with CID %d taken = %v, want ErrCIDInUse", cid1, err)
	}
	shutdown(t, m1)
	shutdown(t, m2)
}
