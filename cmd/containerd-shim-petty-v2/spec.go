package main

import (
	"math"
)

// ociSpec is the part of an OCI runtime spec (config.json) the shim reads.
type ociSpec struct {
	Process     *ociProcess       `json:"process"`
	Annotations map[string]string `json:"annotations"`
	Linux       *ociLinux         `json:"linux"`
}

type ociLinux struct {
	Resources *ociResources `json:"resources"`
}

type ociResources struct {
	Memory *ociMemory `json:"memory"`
	CPU    *ociCPU    `json:"cpu"`
}

type ociMemory struct {
	Limit *int64 `json:"limit"`
}

type ociCPU struct {
	Quota  *int64  `json:"quota"`
	Period *uint64 `json:"period"`
}

// ociProcess is an OCI process: the container's, or an exec's.
type ociProcess struct {
	Terminal bool     `json:"terminal"`
	Args     []string `json:"args"`
	Env      []string `json:"env"`
	Cwd      string   `json:"cwd"`
	User     struct {
		UID uint32 `json:"uid"`
	} `json:"user"`
}

// VM sizes: a pod's VM gets the OCI limits of its first container, and
// these bounds.
const (
	// MinMemoryMiB is the smallest guest: a memory limit below it (or none)
	// gets this much.
	MinMemoryMiB = 256
	// MaxVCPUs bounds the vCPUs a CPU quota asks for.
	MaxVCPUs = 8
)

// vmSize turns the spec's resource limits into the VM's memory and vCPUs:
// the memory limit rounded up to MiB (at least MinMemoryMiB), the CPU quota
// over its period rounded up (at least 1, at most MaxVCPUs).
func vmSize(s *ociSpec) (memMiB, vcpus int) {
	memMiB, vcpus = MinMemoryMiB, 1
	if s == nil || s.Linux == nil || s.Linux.Resources == nil {
		return memMiB, vcpus
	}
	r := s.Linux.Resources
	if r.Memory != nil && r.Memory.Limit != nil && *r.Memory.Limit > 0 {
		memMiB = max(memMiB, int(math.Ceil(float64(*r.Memory.Limit)/(1<<20))))
	}
	if r.CPU != nil && r.CPU.Quota != nil && *r.CPU.Quota > 0 {
		period := uint64(100000)
		if r.CPU.Period != nil && *r.CPU.Period > 0 {
			period = *r.CPU.Period
		}
		vcpus = min(MaxVCPUs, max(1, int(math.Ceil(float64(*r.CPU.Quota)/float64(period)))))
	}
	return memMiB, vcpus
}
