package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/vm"
)

// findFirecracker returns the firecracker executable the way vm.Config does:
// explicit, then $PETTY_FIRECRACKER_BIN, then $PATH. It returns "" when none
// is found.
func findFirecracker(explicit string) string {
	for _, p := range []string{explicit, os.Getenv(vm.FirecrackerBinEnv)} {
		if p != "" {
			if path, err := exec.LookPath(p); err == nil {
				return path
			}
			return ""
		}
	}
	if p, err := exec.LookPath("firecracker"); err == nil {
		return p
	}
	return ""
}

// vmmChoice is the VMM petty picked and why.
type vmmChoice struct {
	vmm    vm.VMM
	accel  string // QEMU: "kvm" or "tcg"; "" for Firecracker
	reason string
}

// chooseVMM resolves --vmm (auto, firecracker or qemu).
func chooseVMM(flag, firecrackerBin string) vmmChoice {
	kvmOK, kvmWhy := qemu.KVMUsable()
	accel := "tcg"
	if kvmOK {
		accel = "kvm"
	}
	switch vm.VMM(flag) {
	case vm.Firecracker:
		return vmmChoice{vmm: vm.Firecracker, reason: "--vmm firecracker"}
	case vm.QEMU:
		return vmmChoice{vmm: vm.QEMU, accel: accel, reason: "--vmm qemu"}
	}
	fc := findFirecracker(firecrackerBin)
	switch {
	case fc != "" && kvmOK:
		return vmmChoice{vmm: vm.Firecracker, reason: "firecracker found at " + fc + " and KVM is usable"}
	case fc == "":
		return vmmChoice{vmm: vm.QEMU, accel: accel, reason: fmt.Sprintf("firecracker not found; QEMU with %s", accel)}
	default:
		return vmmChoice{vmm: vm.QEMU, accel: accel, reason: "KVM cannot boot Firecracker guests (" + kvmWhy + ")"}
	}
}
