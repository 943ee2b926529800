package vm

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrCIDInUse is wrapped by Start's error when an explicit Vsock.CID of a
// QEMU VM is held by another VM on this host (vhost-vsock CIDs are global).
var ErrCIDInUse = errors.New("vsock CID is in use by another VM on this host")

// vhostVsockPath is the vhost-vsock device.
const vhostVsockPath = "/dev/vhost-vsock"

// vhostVsockSetGuestCID is VHOST_VSOCK_SET_GUEST_CID, _IOW(0xAF, 0x60, __u64).
const vhostVsockSetGuestCID = 0x4008AF60

// CIDs a QEMU VM may get: 0-2 are reserved, 2^32-1 is VMADDR_CID_ANY.
const (
	minGuestCID = 3
	maxGuestCID = 1<<32 - 2 // exclusive
)

// cidClaimTries bounds the random CIDs tried before giving up.
const cidClaimTries = 64

// vhostVsockDev is what claiming a guest CID needs from /dev/vhost-vsock;
// tests replace it.
type vhostVsockDev interface {
	// open opens a new vhost-vsock instance (close-on-exec).
	open() (*os.File, error)
	// setGuestCID sets the instance's guest CID; the kernel answers
	// EADDRINUSE when another instance holds it.
	setGuestCID(f *os.File, cid uint64) error
}

// hostVhostVsock is the host's /dev/vhost-vsock.
type hostVhostVsock struct{}

func (hostVhostVsock) open() (*os.File, error) {
	return os.OpenFile(vhostVsockPath, os.O_RDWR|unix.O_CLOEXEC, 0)
}

func (hostVhostVsock) setGuestCID(f *os.File, cid uint64) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := sc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, vhostVsockSetGuestCID, uintptr(unsafe.Pointer(&cid)))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// randomCID returns a random CID in [minGuestCID, maxGuestCID).
func randomCID() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return minGuestCID + binary.LittleEndian.Uint32(b[:])%(maxGuestCID-minGuestCID)
}

// claimCID opens a vhost-vsock instance and sets its guest CID, which the
// kernel then reserves, across every process of the host, until the
// instance's last descriptor is closed. QEMU gets the descriptor (vhostfd=),
// so that the CID cannot be taken between petty's choice and QEMU's start.
// want 0 means any: random CIDs are tried until one is free. An explicit
// want that is taken fails with ErrCIDInUse.
func claimCID(dev vhostVsockDev, want uint32, random func() uint32) (*os.File, uint32, error) {
	f, err := dev.open()
	if err != nil {
		return nil, 0, fmt.Errorf("vhost-vsock: %w", err)
	}
	if want != 0 {
		err := dev.setGuestCID(f, uint64(want))
		switch {
		case err == nil:
			return f, want, nil
		case errors.Is(err, unix.EADDRINUSE):
			err = fmt.Errorf("Vsock.CID %d: %w", want, ErrCIDInUse)
		default:
			err = fmt.Errorf("vhost-vsock: set guest CID %d: %w", want, err)
		}
		_ = f.Close()
		return nil, 0, err
	}
	for range cidClaimTries {
		cid := random()
		err := dev.setGuestCID(f, uint64(cid))
		if err == nil {
			return f, cid, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			_ = f.Close()
			return nil, 0, fmt.Errorf("vhost-vsock: set guest CID %d: %w", cid, err)
		}
	}
	_ = f.Close()
	return nil, 0, fmt.Errorf("vhost-vsock: no free guest CID after %d tries: %w", cidClaimTries, ErrCIDInUse)
}
