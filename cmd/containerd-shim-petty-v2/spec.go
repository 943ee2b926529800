package main

import (
	"math"
	"strconv"
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

// Pod-level resources that containerd's CRI plugin (1.7 and later, with
// kubelet 1.23 and later) puts on a pod sandbox's spec: the sum of its
// containers' limits.
const (
	annSandboxMemory    = "io.kubernetes.cri.sandbox-memory"
	annSandboxCPUQuota  = "io.kubernetes.cri.sandbox-cpu-quota"
	annSandboxCPUPeriod = "io.kubernetes.cri.sandbox-cpu-period"
)

// vmSize turns the spec's resource limits into the VM's memory and vCPUs:
// the memory limit rounded up to MiB (at least MinMemoryMiB), the CPU quota
// over its period rounded up (at least 1, at most MaxVCPUs). A pod
// sandbox's annotations with the pod's limits take precedence.
func vmSize(s *ociSpec) (memMiB, vcpus int) {
	memMiB, vcpus = MinMemoryMiB, 1
	if s == nil {
		return memMiB, vcpus
	}
	var mem, quota int64
	var period uint64
	if s.Linux != nil && s.Linux.Resources != nil {
		r := s.Linux.Resources
		if r.Memory != nil && r.Memory.Limit != nil {
			mem = *r.Memory.Limit
		}
		if r.CPU != nil && r.CPU.Quota != nil {
			quota = *r.CPU.Quota
			if r.CPU.Period != nil {
				period = *r.CPU.Period
			}
		}
	}
	if v, err := strconv.ParseInt(s.Annotations[annSandboxMemory], 10, 64); err == nil && v > 0 {
		mem = v
	}
	if v, err := strconv.ParseInt(s.Annotations[annSandboxCPUQuota], 10, 64); err == nil && v > 0 {
		quota, period = v, 0
		if p, err := strconv.ParseUint(s.Annotations[annSandboxCPUPeriod], 10, 64); err == nil {
			period = p
		}
	}
	if mem > 0 {
		memMiB = max(memMiB, int(math.Ceil(float64(mem)/(1<<20))))
	}
	if quota > 0 {
		if period == 0 {
			period = 100000
		}
		vcpus = min(MaxVCPUs, max(1, int(math.Ceil(float64(quota)/float64(period)))))
	}
	return memMiB, vcpus
}
