package guest

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// linkFlags returns the interface flags of name (0 after reporting an
// error to t, from any goroutine).
func linkFlags(t *testing.T, name string) uint16 {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr)
	}
	if err != nil {
		t.Errorf("SIOCGIFFLAGS %s: %v", name, err)
		return 0
	}
	return ifr.Uint16()
}

// TestSetLinkUp brings lo up in a network namespace of its own (on a
// thread that dies with it), where lo starts down, as in a fresh guest.
func TestSetLinkUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_ADMIN) to create a network namespace: run the test as root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the thread, in its own network namespace, exits
		// with this goroutine instead of serving others.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare(CLONE_NEWNET): %v", err)
			return
		}
		if f := linkFlags(t, loopbackName); f&unix.IFF_UP != 0 {
			t.Errorf("lo in a new network namespace: flags %#x, want down", f)
			return
		}
		for range 2 { // the second call finds it up
			if err := setLinkUp(loopbackName); err != nil {
				t.Errorf("setLinkUp: %v", err)
				return
			}
			if f := linkFlags(t, loopbackName); f&unix.IFF_UP == 0 || f&unix.IFF_RUNNING == 0 {
				t.Errorf("lo after setLinkUp: flags %#x, want IFF_UP and IFF_RUNNING", f)
			}
		}
		if err := setLinkUp("nosuchlink0"); err == nil {
			t.Error("setLinkUp(nosuchlink0) = nil, want an error")
		}
	}()
	<-done
}
