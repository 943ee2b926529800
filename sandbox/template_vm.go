package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/pettyvm/petty/vm"
)

// This file is the seam between the templates and the vm package's
// snapshots (vm.Machine.Snapshot, vm.Restore).

// snapshotsSupported says why VMs configured as cfg cannot be snapshotted
// (nil: they may be; the VMM has the last word, vm.ErrSnapshotUnsupported).
func snapshotsSupported(cfg vm.Config) error { return nil }

// snapshotVM writes machine's snapshot into dir (empty); machine keeps
// running.
func snapshotVM(ctx context.Context, machine *vm.Machine, dir string) error {
	return machine.Snapshot(ctx, dir)
}

// restoreVM starts a clone of the snapshot in dir, configured as cfg
// (VMM, binaries, run directory, console, logger), under a host name of
// its own. Its writable drives are copies in its run directory, which
// Destroy removes: the instance has no work directory. The instance has
// no agent client yet.
func restoreVM(ctx context.Context, dir string, cfg vm.Config) (*instance, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	m, err := vm.Restore(ctx, dir, vm.RestoreOptions{
		VMM: cfg.VMM, RunDir: cfg.RunDir, QEMUBin: cfg.QEMUBin, FirecrackerBin: cfg.FirecrackerBin,
		Hostname: "petty-" + hex.EncodeToString(b[:]), Console: cfg.Console, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &instance{machine: m}, nil
}
