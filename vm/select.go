package vm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/pettyvm/petty/qemu"
)

// AutoVMM asks SelectVMM to pick the VMM for this host.
const AutoVMM VMM = "auto"

// ErrNoFirecracker is wrapped by SelectVMM's error when Firecracker is
// wanted and no usable firecracker binary is found.
var ErrNoFirecracker = errors.New("no usable firecracker binary")

// FirecrackerFix says how to get a firecracker binary.
const FirecrackerFix = "download firecracker v1.16 from https://github.com/firecracker-microvm/firecracker/releases " +
	"into $PATH, or set $" + FirecrackerBinEnv + " (petty: --firecracker-bin)"

// Selection is the VMM SelectVMM picked for this host, and why.
type Selection struct {
	// VMM is Firecracker or QEMU.
	VMM VMM
	// Accel is QEMU's accelerator, "kvm" or "tcg"; "" for Firecracker.
	Accel string
	// FirecrackerBin is the firecracker executable found, "" if none.
	FirecrackerBin string
	// KVM reports whether KVM can run stock guests here; KVMWhy says why
	// not when it cannot.
	KVM    bool
	KVMWhy string
	// Reason is a sentence a person can read: why this VMM.
	Reason string
}

// FindFirecracker returns the firecracker executable the way Config does:
// explicit, then $PETTY_FIRECRACKER_BIN, then "firecracker" in $PATH. The
// error wraps ErrNoFirecracker, names what was looked for and how to get it.
func FindFirecracker(explicit string) (string, error) {
	for _, p := range []string{explicit, os.Getenv(FirecrackerBinEnv)} {
		if p == "" {
			continue
		}
		path, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %w (%s)", ErrNoFirecracker, p, err, FirecrackerFix)
		}
		return path, nil
	}
	path, err := exec.LookPath("firecracker")
	if err != nil {
		return "", fmt.Errorf("%w: firecracker is not in $PATH and $%s is not set (%s)", ErrNoFirecracker, FirecrackerBinEnv, FirecrackerFix)
	}
	return path, nil
}

// SelectVMM resolves want (AutoVMM or "", Firecracker, QEMU) for this host.
// It is petty's one backend policy: auto picks Firecracker when its binary is
// found and KVM can boot stock guests, and QEMU (KVM when usable, TCG
// otherwise) in every other case. Firecracker, wanted or picked, needs a
// usable binary: without one SelectVMM fails at once with ErrNoFirecracker,
// so that a caller can check before any slow preparation. It only probes:
// it starts nothing.
func SelectVMM(want VMM, firecrackerBin string) (Selection, error) {
	var s Selection
	s.KVM, s.KVMWhy = qemu.KVMUsable()
	accel := qemu.AccelTCG
	if s.KVM {
		accel = qemu.AccelKVM
	}
	fc, fcErr := FindFirecracker(firecrackerBin)
	s.FirecrackerBin = fc
	switch want {
	case Firecracker:
		if fcErr != nil {
			return s, fcErr
		}
		s.VMM, s.Reason = Firecracker, "--vmm firecracker ("+fc+")"
	case QEMU:
		s.VMM, s.Accel, s.Reason = QEMU, accel, "--vmm qemu"
	case AutoVMM, "":
		switch {
		case fcErr == nil && s.KVM:
			s.VMM, s.Reason = Firecracker, "firecracker found at "+fc+" and KVM is usable"
		case fcErr != nil:
			s.VMM, s.Accel, s.Reason = QEMU, accel, "firecracker not found; QEMU with "+accel
		default:
			s.VMM, s.Accel, s.Reason = QEMU, accel, "KVM cannot boot Firecracker guests ("+s.KVMWhy+")"
		}
	default:
		return s, fmt.Errorf("vm: unknown VMM %q (want %q, %q or %q)", want, AutoVMM, Firecracker, QEMU)
	}
	return s, nil
}
