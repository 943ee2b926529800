package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// scratchSize is the scratch disk of each Debian boot, petty run's default.
const scratchSize = 2 << 30

// storeImage returns the image name of the image store built with agentBin,
// the agent this benchmark measures: a cache hit when the store has it
// already; otherwise it is (re)built, its steps logged, as on petty run's
// first use of the default image (a Debian image's packages are kept, so a
// rebuild for a new agent takes about a minute). A name other than the
// built-in images is taken as it is, with its own agent.
func storeImage(ctx context.Context, name, agentBin string) (*image.Stored, error) {
	s, err := image.DefaultStore()
	if err != nil {
		return nil, err
	}
	var st *image.Stored
	if name == image.DefaultImage {
		st, err = s.Build(ctx, image.BuildSpec{
			Name:      name,
			AgentPath: agentBin,
			Progress:  func(step string) { log.Printf("building image %s: %s", name, step) },
		})
	} else {
		st, err = s.Get(name)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", name, err)
	}
	if st.RootFS == "" {
		return nil, fmt.Errorf("image %s has no root file system", name)
	}
	return st, nil
}

// debianBooter boots a store image as petty run does: the image's root
// file system read-only as /dev/vda, a fresh sparse ext4 scratch disk as
// /dev/vdb, the agent stacking them with overlayfs as PID 1.
type debianBooter struct {
	accel, qemuBin, runDir, dir string
	img                         *image.Stored
	mkfs                        []time.Duration // scratch disk creation, not in the boot time
	creates                     []time.Duration // vm.Create's share of each boot
}

// boot returns the time from vm.Create until the agent answered a Ping. The
// scratch disk is made first, timed apart.
func (d *debianBooter) boot(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.Now()
	scratch, err := image.NewScratchDisk(ctx, d.dir, scratchSize) // as petty run does
	if err != nil {
		return 0, err
	}
	defer image.RemoveScratchDisk(scratch)
	d.mkfs = append(d.mkfs, time.Since(t))
	t = time.Now()
	m, err := vm.Create(ctx, vm.Config{
		VMM: vm.QEMU, Accel: d.accel, VCPUs: 1, MemoryMiB: 256,
		Kernel: d.img.Kernel, Initrd: d.img.Initrd, QEMUBin: d.qemuBin, RunDir: d.runDir,
		BootArgs:  vm.DefaultBootArgs + " petty.root=/dev/vda petty.scratch=/dev/vdb",
		RootDrive: vm.Drive{Path: d.img.RootFS, ReadOnly: true},
		Drives:    []vm.Drive{{ID: image.ScratchDriveID, Path: scratch}},
	})
	if err != nil {
		return 0, err
	}
	d.creates = append(d.creates, time.Since(t))
	defer m.Destroy(context.WithoutCancel(ctx))
	c, err := m.Agent(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w\nconsole: %s", err, m.ConsoleTail())
	}
	defer c.Close()
	if _, err := c.Ping(ctx); err != nil {
		return 0, err
	}
	return time.Since(t), nil
}
