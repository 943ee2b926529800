package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// scratchSize is the scratch disk of each Debian boot, petty run's default.
const scratchSize = 2 << 30

// storeImage returns the image name of the image store, building it (with
// its steps logged) when it is not there: what petty run does on the first
// use of the default image.
func storeImage(ctx context.Context, name, agentBin string) (*image.Stored, error) {
	s, err := image.DefaultStore()
	if err != nil {
		return nil, err
	}
	st, err := s.Get(name)
	if errors.Is(err, image.ErrNoImage) {
		st, err = s.Build(ctx, image.BuildSpec{
			Name:      name,
			AgentPath: agentBin,
			Progress:  func(step string) { log.Printf("building image %s: %s", name, step) },
		})
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
}

// boot returns the time from vm.Create until the agent answered a Ping. The
// scratch disk is made first, timed apart.
func (d *debianBooter) boot(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.Now()
	scratch, err := makeScratch(ctx, d.dir, scratchSize)
	if err != nil {
		return 0, err
	}
	defer os.Remove(scratch)
	d.mkfs = append(d.mkfs, time.Since(t))
	t = time.Now()
	m, err := vm.Create(ctx, vm.Config{
		VMM: vm.QEMU, Accel: d.accel, VCPUs: 1, MemoryMiB: 256,
		Kernel: d.img.Kernel, Initrd: d.img.Initrd, QEMUBin: d.qemuBin, RunDir: d.runDir,
		BootArgs:  vm.DefaultBootArgs + " petty.root=/dev/vda petty.scratch=/dev/vdb",
		RootDrive: vm.Drive{Path: d.img.RootFS, ReadOnly: true},
		Drives:    []vm.Drive{{ID: "scratch", Path: scratch}},
	})
	if err != nil {
		return 0, err
	}
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

// makeScratch makes a sparse ext4 scratch disk in dir as petty run does
// (cmd/petty/scratch.go: no journal, lazy inode tables).
func makeScratch(ctx context.Context, dir string, size int64) (string, error) {
	f, err := os.CreateTemp(dir, "scratch-*.ext4")
	if err != nil {
		return "", err
	}
	path := f.Name()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var out []byte
		out, err = exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "lazy_itable_init=1,nodiscard", path).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("mkfs.ext4: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return filepath.Clean(path), nil
}
