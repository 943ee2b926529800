package main

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Host paths probed by the KVM check; variables so that tests can point them
// elsewhere.
var (
	kvmDevice    = "/dev/kvm"
	kvmPVMModule = "/sys/module/kvm_pvm"
)

// kvmGetAPIVersion is the KVM_GET_API_VERSION ioctl; KVM's stable API is 12.
const (
	kvmGetAPIVersion = 0xAE00
	kvmAPIVersion    = 12
)

// kvmUsable reports whether KVM can boot guests on this host, and why not
// (with the fix) when it cannot.
func kvmUsable() (ok bool, why string) {
	if _, err := os.Stat(kvmPVMModule); err == nil {
		return false, "KVM is the kvm_pvm module (nested PVM): it cannot boot Firecracker/QEMU guests; run on bare metal or a VM with nested virtualization (QEMU/TCG works meanwhile)"
	}
	f, err := os.OpenFile(kvmDevice, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return false, kvmDevice + " does not exist: enable virtualization (VT-x/AMD-V) and load the module (modprobe kvm_intel or kvm_amd)"
		case errors.Is(err, os.ErrPermission):
			return false, fmt.Sprintf("%s is not accessible: add yourself to its group (sudo usermod -aG kvm $USER, then log in again)", kvmDevice)
		}
		return false, fmt.Sprintf("cannot open %s: %v", kvmDevice, err)
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return false, fmt.Sprintf("%s: KVM_GET_API_VERSION: %v", kvmDevice, err)
	}
	if v != kvmAPIVersion {
		return false, fmt.Sprintf("%s: KVM API version %d, want %d", kvmDevice, v, kvmAPIVersion)
	}
	return true, "/dev/kvm is usable"
}
