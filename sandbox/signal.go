package sandbox

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSignal is the highest signal number (SIGRTMAX on Linux).
const maxSignal = 64

// ParseSignal parses a signal given as a name ("SIGTERM", "TERM",
// "sigterm") or a number ("15"). An empty string is SIGKILL.
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return syscall.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > maxSignal {
			return 0, &InvalidError{Field: "signal", Problem: fmt.Sprintf("%d is not a signal number (1 to %d)", n, maxSignal)}
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, &InvalidError{Field: "signal", Problem: fmt.Sprintf("unknown signal %q (want a name like SIGTERM or a number)", s)}
}
