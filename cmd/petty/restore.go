package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/vm"
)

// restoreExcludes are the flags of petty run that a snapshot fixes: they
// exclude --restore.
var restoreExcludes = []string{"image", "disk-size", "kernel", "initrd", "rootfs", "drive", "vcpus", "memory", "mac"}

// checkRestoreFlags rejects the flags --restore excludes.
func checkRestoreFlags(fs *pflag.FlagSet) error {
	for _, name := range restoreExcludes {
		if fs.Changed(name) {
			return usagef("--%s and --restore exclude each other: the snapshot fixes the VM's shape", name)
		}
	}
	return nil
}

// restoreOptions are the vm.RestoreOptions of a clone whose Config carries
// the CLI's choices (RunDir, FirecrackerBin, VMM, Network.Tap, Logger,
// Console).
func restoreOptions(cfg vm.Config, hostname string) vm.RestoreOptions {
	o := vm.RestoreOptions{
		VMM:            cfg.VMM,
		RunDir:         cfg.RunDir,
		FirecrackerBin: cfg.FirecrackerBin,
		QEMUBin:        cfg.QEMUBin,
		Hostname:       hostname,
		Console:        cfg.Console,
		Logger:         cfg.Logger,
	}
	if cfg.Network != nil {
		o.Tap = cfg.Network.Tap
	}
	return o
}

// restoreConfig is the part of a Config petty run --restore sets: the VMM
// when --vmm names one, the firecracker binary, the tap, the run root.
func (a *app) restoreConfig(f *vmFlags, dir string) (vm.Config, error) {
	man, err := vm.ReadManifest(dir)
	if err != nil {
		return vm.Config{}, err
	}
	cfg := vm.Config{RunDir: a.runDir, VMM: man.Backend, FirecrackerBin: f.firecrackerBin}
	if f.vmm != "auto" {
		cfg.VMM = vm.VMM(f.vmm) // vm.Restore refuses another backend's snapshot
	}
	if f.tap != "" {
		cfg.Network = &vm.Network{Tap: f.tap}
	}
	return cfg, nil
}

// runRestored is petty run --restore DIR -- CMD: a clone runs CMD and is
// destroyed.
func (a *app) runRestored(ctx context.Context, f *vmFlags, dir string, gc *agent.Cmd) (retErr error) {
	ctx, caught, stop := interruptible(ctx)
	defer stop()
	defer whenInterrupted(caught, &retErr)
	a.reclaim()
	cfg, err := a.restoreConfig(f, dir)
	if err != nil {
		return err
	}
	cfg.Logger = a.logger()
	if a.verbose {
		cfg.Console = newEscaper(a.stderr)
	}
	prog := newProgress(a.stderr, a.verbose)
	prog.step("restoring VM from %s", dir)
	bctx, cancel := context.WithTimeout(ctx, f.bootTimeout)
	began := time.Now()
	m, err := vm.Restore(bctx, dir, restoreOptions(cfg, ""))
	cancel()
	prog.done()
	if err != nil {
		return bootError(ctx, err, f.bootTimeout, nil)
	}
	a.logger().Debug("restored", "took", time.Since(began))
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.stopTimeout)
		defer cancel()
		if err := m.Destroy(dctx); err != nil && retErr == nil {
			retErr = fmt.Errorf("destroying the VM: %w", err)
		}
	}()
	actx, cancel := context.WithTimeout(ctx, f.bootTimeout)
	c, err := m.Agent(actx)
	cancel()
	if err != nil {
		return bootError(ctx, err, f.bootTimeout, nil)
	}
	defer c.Close()
	return a.runInGuest(ctx, c, gc)
}
