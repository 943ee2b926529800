package guest

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// Refresh: a VM restored from a snapshot becomes its own machine.
//
// Every clone of a snapshot wakes up with the same kernel RNG state, the
// same wall clock (the snapshot's moment) and the same host name. The host
// calls Refresh right after the restore: the agent mixes the host's entropy
// into the input pool with RNDADDENTROPY, crediting it, and forces a reseed
// of the CRNG with RNDRESEEDCRNG (Linux 4.17+; older kernels reseed on the
// credit), so that two clones never read the same bytes from /dev/urandom;
// it sets CLOCK_REALTIME to the host's time; and it takes the host name it
// is given. Only an agent that is PID 1 of the initial PID namespace (a
// guest's init) touches the machine: anywhere else Refresh fails with
// FailedPrecondition, so that a test never sets its host's clock.

// RefreshDryRunEnv, set to "1" in the environment of an agent that is not
// PID 1 (a host-run agent standing in for a guest's, as under the fake
// firecracker), makes Refresh check its request, log it and succeed without
// touching the machine.
const RefreshDryRunEnv = "PETTY_AGENT_REFRESH_DRY_RUN"

// Ioctls of random(4) (linux/random.h).
const (
	ioctlRNDADDENTROPY = 0x40085203 // _IOW('R', 0x03, int[2])
	ioctlRNDRESEEDCRNG = 0x5207     // _IO('R', 0x07)
)

// maxRefreshEntropy bounds the entropy one Refresh mixes in.
const maxRefreshEntropy = 4096

// minRefreshEntropy is the least entropy a Refresh must bring (256 bits).
const minRefreshEntropy = 32

// refreshAllowed reports whether this agent may change its machine: only as
// PID 1 of the initial PID namespace, that is, a guest's init (a PID 1 in a
// PID namespace of the host, as in tests, would set the host's clock).
func refreshAllowed() bool {
	if os.Getpid() != 1 {
		return false
	}
	_, ok := inInitialPIDNamespace()
	return ok
}

func (s *service) Refresh(ctx context.Context, req *agentpb.RefreshRequest) (*agentpb.RefreshResponse, error) {
	switch n := len(req.Entropy); {
	case n < minRefreshEntropy:
		return nil, errorf(wire.InvalidArgument, "entropy: %d bytes, want at least %d", n, minRefreshEntropy)
	case n > maxRefreshEntropy:
		return nil, errorf(wire.InvalidArgument, "entropy: %d bytes, at most %d", n, maxRefreshEntropy)
	}
	if req.UnixNano <= 0 {
		return nil, errorf(wire.InvalidArgument, "unix_nano %d", req.UnixNano)
	}
	if req.Hostname != "" && (len(req.Hostname) > 64 || !validHostname(req.Hostname)) {
		return nil, errorf(wire.InvalidArgument, "hostname %q", req.Hostname)
	}
	log := s.srv.logger()
	if !refreshAllowed() {
		if os.Getenv(RefreshDryRunEnv) == "1" {
			log.Info("refresh (dry run: not PID 1, the machine is left alone)", "hostname", req.Hostname, "entropy_bytes", len(req.Entropy), "clock", time.Unix(0, req.UnixNano).UTC())
			return &agentpb.RefreshResponse{}, nil
		}
		return nil, errorf(wire.FailedPrecondition, "refresh changes the machine's clock and RNG: only petty-agent as PID 1 inside a guest does it")
	}
	if err := addEntropy(req.Entropy); err != nil {
		return nil, errorf(wire.Internal, "reseed the RNG: %v", err)
	}
	ts := unix.NsecToTimespec(req.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return nil, errorf(wire.Internal, "set the clock: %v", err)
	}
	if req.Hostname != "" {
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			return nil, errorf(wire.Internal, "set the host name: %v", err)
		}
		if err := addHostsEntry(hostsPath, req.Hostname); err != nil {
			log.Warn("refresh: hosts entry", "err", err) // read-only /etc: the name is set all the same
		}
	}
	log.Info("refreshed after a restore", "hostname", req.Hostname, "clock", time.Unix(0, req.UnixNano).UTC())
	return &agentpb.RefreshResponse{}, nil
}

// addEntropy mixes b into the kernel's input pool, crediting every bit, and
// reseeds the CRNG where the kernel can.
func addEntropy(b []byte) error {
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(b)+3)
	binary.NativeEndian.PutUint32(info[0:], uint32(8*len(b)))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(b)))
	copy(info[8:], b)
	if err := ioctlPtr(f.Fd(), ioctlRNDADDENTROPY, info); err != nil {
		return err
	}
	err = ioctlPtr(f.Fd(), ioctlRNDRESEEDCRNG, nil)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
		return nil // before Linux 4.17: the credit reseeds
	}
	return err
}

// ioctlPtr runs ioctl(fd, req, &b[0]) (0 for nil b).
func ioctlPtr(fd uintptr, req uint, b []byte) error {
	var arg uintptr
	if len(b) > 0 {
		arg = uintptr(unsafe.Pointer(&b[0]))
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), arg)
	runtime.KeepAlive(b)
	if errno != 0 {
		return errno
	}
	return nil
}

// validHostname reports whether name is a plausible host name: letters,
// digits, '-', '.' and '_'.
func validHostname(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
