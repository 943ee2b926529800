package vm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"regexp"
)

// macPattern is the only MAC form vm accepts: six colon-separated pairs of
// hex digits, as QEMU and Firecracker take it. net.ParseMAC also accepts
// "0600.ac10.0002", "06-00-…" and 8- or 20-byte addresses, which would reach
// the VMM as they are.
var macPattern = regexp.MustCompile(`^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$`)

// errBadMAC is wrapped by checkMAC's errors.
var errBadMAC = errors.New("want a unicast MAC address of the form xx:xx:xx:xx:xx:xx")

// checkMAC reports why s is not a usable guest MAC address: it must have the
// colon form of 6 bytes, be unicast and not all zeros.
func checkMAC(s string) error {
	if !macPattern.MatchString(s) {
		return fmt.Errorf("%q: %w", s, errBadMAC)
	}
	hw, err := net.ParseMAC(s)
	if err != nil {
		return fmt.Errorf("%q: %w: %w", s, errBadMAC, err)
	}
	switch {
	case hw[0]&0x01 != 0:
		return fmt.Errorf("%q is a multicast address: %w", s, errBadMAC)
	case string(hw) == "\x00\x00\x00\x00\x00\x00":
		return fmt.Errorf("%q is the zero address: %w", s, errBadMAC)
	}
	return nil
}

// newMAC returns a random locally administered unicast MAC address (bit
// 0x02 of the first byte set, bit 0x01 clear), so that VMs on one bridge
// never share QEMU's default address.
func newMAC() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	b[0] = b[0]&^0x01 | 0x02
	return net.HardwareAddr(b[:]).String()
}
