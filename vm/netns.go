package vm

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// joinNetns makes the calling thread, which must be locked to its goroutine,
// join the network namespace that target (an open /proc/…/ns/net) names,
// when it is not in it already. tainted reports that the thread changed
// namespace and must not go back to Go's pool. A nil target does nothing.
func joinNetns(target *os.File) (tainted bool, err error) {
	if target == nil {
		return false, nil
	}
	var want, have unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &want); err != nil {
		return false, nil // cannot tell: stay where we are
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &have); err != nil {
		return false, nil
	}
	if want.Dev == have.Dev && want.Ino == have.Ino {
		return false, nil
	}
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("join the caller's network namespace: %w", err)
	}
	return true, nil
}
