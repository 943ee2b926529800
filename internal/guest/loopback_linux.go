package guest

import (
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"
)

// loopbackName is the loopback interface every Linux network namespace has.
const loopbackName = "lo"

// upLoopback sets IFF_UP on the guest's loopback interface, which nothing
// else in a minimal guest brings up: without it 127.0.0.1 is unreachable.
// Only the guest's init calls it (becomeGuestInit).
func upLoopback(log *slog.Logger) {
	if err := setLinkUp(loopbackName); err != nil {
		log.Warn("bring loopback up", "err", err)
	}
}

// setLinkUp sets IFF_UP on the interface name with SIOCGIFFLAGS and
// SIOCSIFFLAGS. An interface already up is left as it is.
func setLinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("agent: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("agent: interface %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("agent: %s: SIOCGIFFLAGS: %w", name, err)
	}
	flags := ifr.Uint16()
	if flags&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(flags | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("agent: %s: SIOCSIFFLAGS: %w", name, err)
	}
	return nil
}
