package sandbox

import (
	"context"
	"fmt"

	"github.com/pettyvm/petty/vm"
)

// This file is the seam between the templates and the vm package's
// snapshots.

// snapshotsSupported says why VMs configured as cfg cannot be snapshotted
// (nil: they can).
func snapshotsSupported(cfg vm.Config) error {
	return fmt.Errorf("%w: the vm package has no snapshots yet", errSnapshotsUnavailable)
}

// snapshotVM writes machine's snapshot into dir; machine keeps running.
func snapshotVM(ctx context.Context, machine *vm.Machine, dir string) error {
	return errSnapshotsUnavailable
}

// restoreVM starts a VM from the snapshot in dir, its writable files
// under workDir; the instance it returns has no agent client yet.
func restoreVM(ctx context.Context, dir string, cfg vm.Config, workDir string) (*instance, error) {
	return nil, errSnapshotsUnavailable
}
