package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Addresses of the network test, inside the test's own network namespace.
const (
	netHostIP  = "10.213.0.1"
	netGuestIP = "10.213.0.2"
	netTap     = "ptap0"
	netMAC     = "06:00:0a:d5:00:02"
)

// ip runs ip(8) with args, failing the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testNetns creates a network namespace holding a tap with the host's test
// address, removed when the test ends, and returns its name. It skips when
// that cannot be set up.
func testNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the network test creates a network namespace and a tap: run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip not found: apt-get install iproute2")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no /dev/net/tun (modprobe tun): %v", err)
	}
	ns := fmt.Sprintf("petty-qt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	ip(t, "-n", ns, "link", "set", "lo", "up")
	ip(t, "netns", "exec", ns, "ip", "tuntap", "add", "dev", netTap, "mode", "tap")
	ip(t, "-n", ns, "addr", "add", netHostIP+"/24", "dev", netTap)
	ip(t, "-n", ns, "link", "set", netTap, "up")
	return ns
}

// inNetns runs fn on an OS thread that has joined the network namespace
// ns, so that processes fn starts (QEMU, which opens the tap) live there.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	done := make(chan struct{})
	var setupErr error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			setupErr = err
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			setupErr = fmt.Errorf("setns %s: %w", ns, err)
			runtime.UnlockOSThread()
			return
		}
		fn()
		// A thread that cannot go back stays locked and exits with the goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	if setupErr != nil {
		t.Skipf("cannot enter the network namespace: %v", setupErr)
	}
}

// TestQEMUNetwork attaches the guest to a tap in a private network
// namespace: host and guest ping each other, and the guest has the
// configured MAC.
func TestQEMUNetwork(t *testing.T) {
	cfg := qemuConfig(t)
	ns := testNetns(t)
	cfg.Network = &Network{Tap: netTap, MAC: netMAC}
	var m *Machine
	var newErr, startErr error
	// The tap exists in ns only: New checks it there, and Start runs
	// QEMU there.
	inNetns(t, ns, func() {
		if m, newErr = New(cfg); newErr == nil {
			startErr = m.Start(t.Context())
		}
	})
	if newErr != nil {
		t.Fatal(newErr)
	}
	t.Cleanup(func() { destroyAndCheck(t, m) })
	if startErr != nil {
		t.Fatalf("Start in netns %s: %v", ns, startErr)
	}
	c := waitAgent(t, m)

	if got := run(t, c, "cat", "/sys/class/net/eth0/address"); got != netMAC+"\n" {
		t.Errorf("guest MAC = %q, want %q", got, netMAC)
	}
	run(t, c, "busybox", "ip", "link", "set", "eth0", "up")
	run(t, c, "busybox", "ip", "addr", "add", netGuestIP+"/24", "dev", "eth0")
	run(t, c, "busybox", "ping", "-c", "1", "-W", "5", netHostIP)
	if out, err := exec.Command("ip", "netns", "exec", ns, "busybox", "ping", "-c", "1", "-W", "5", netGuestIP).CombinedOutput(); err != nil {
		t.Errorf("host ping of the guest: %v\n%s", err, out)
	}
	shutdown(t, m)
}

// TestValidateTap checks, in a network namespace the test creates, that a
// Network.Tap naming an existing device passes validation and one naming
// no device is refused, naming it (QEMU would create a temporary tap).
func TestValidateTap(t *testing.T) {
	ns := testNetns(t)
	cfg := validConfig(t)
	var existing, missing, outside error
	inNetns(t, ns, func() {
		c := cfg
		c.Network = &Network{Tap: netTap}
		existing = c.Validate()
		c.Network = &Network{Tap: "nosuchtap7"}
		missing = c.Validate()
	})
	c := cfg
	c.Network = &Network{Tap: netTap}
	outside = c.Validate() // the host's namespace has no such tap
	if existing != nil {
		t.Errorf("Validate with tap %s in its namespace = %v, want nil", netTap, existing)
	}
	for name, err := range map[string]error{"nosuchtap7": missing, netTap + " outside its namespace": outside} {
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "Network.Tap" || !errors.Is(err, ErrNoSuchDevice) {
			t.Errorf("Validate with tap %s = %v, want a Network.Tap *FieldError wrapping ErrNoSuchDevice", name, err)
			continue
		}
		if tap, _, _ := strings.Cut(name, " "); !strings.Contains(err.Error(), `"`+tap+`"`) {
			t.Errorf("error does not name the device %q: %v", tap, err)
		}
	}
}
