package main

import (
	"github.com/pettyvm/petty/vm"
)

// vmmChoice is the VMM petty picked and why (see vm.SelectVMM, the one
// place the policy lives).
type vmmChoice struct {
	vmm    vm.VMM
	accel  string // QEMU: "kvm" or "tcg"; "" for Firecracker
	reason string
}

// chooseVMM resolves --vmm (auto, firecracker or qemu) with vm.SelectVMM.
// It fails at once when Firecracker is wanted, or picked, and no usable
// binary is found: before any image or kernel work.
func chooseVMM(flag, firecrackerBin string) (vmmChoice, error) {
	s, err := vm.SelectVMM(vm.VMM(flag), firecrackerBin)
	if err != nil {
		return vmmChoice{}, err
	}
	return vmmChoice{vmm: s.VMM, accel: s.Accel, reason: s.Reason}, nil
}
