package main

import (
	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	models "github.com/firecracker-microvm/firecracker-go-sdk/client/models"
)

// sdkMachineConfig is the SDK's form of petty's machine config:
// the same vCPUs, memory and SMT off (petty sends "smt": false explicitly).
func sdkMachineConfig() models.MachineConfiguration {
	return models.MachineConfiguration{
		VcpuCount:  firecracker.Int64(vcpus),
		MemSizeMib: firecracker.Int64(memMiB),
		Smt:        firecracker.Bool(false),
	}
}

// configureSDKHandlers adapts the SDK's default handler chain to this
// benchmark. Nothing needs removing for the fake to accept the calls (see
// README.md); handlers that would do nothing for this Config are kept, as a
// user of the SDK would keep them.
func configureSDKHandlers(m *firecracker.Machine) {}
