package main

import (
	"context"
	"time"

	"github.com/pettyvm/petty/vm"
)

// pettyBooter boots the image's agent with petty's QEMU backend.
type pettyBooter struct {
	accel, kernel, initrd, runDir, qemuBin string
	creates                                []time.Duration // vm.Create's share of each boot
}

// boot returns the time from vm.Create until the agent answered a Ping, and
// records how long vm.Create itself took (QEMU spawned, QMP answered).
func (p *pettyBooter) boot(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.Now()
	m, err := vm.Create(ctx, vm.Config{
		VMM: vm.QEMU, Accel: p.accel, VCPUs: 1, MemoryMiB: 256,
		Kernel: p.kernel, Initrd: p.initrd, QEMUBin: p.qemuBin, RunDir: p.runDir,
	})
	if err != nil {
		return 0, err
	}
	p.creates = append(p.creates, time.Since(t))
	defer m.Destroy(context.WithoutCancel(ctx))
	c, err := m.Agent(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Ping(ctx); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}
