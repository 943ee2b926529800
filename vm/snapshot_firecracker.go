package vm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pettyvm/petty/firecracker"
)

// Firecracker snapshots.
//
// Snapshot pauses the microVM (PATCH /vm), has Firecracker write its state
// and memory (PUT /snapshot/create, Full), copies the writable drives, and
// resumes it. A restore is a fresh Firecracker process whose first and only
// configuration call is PUT /snapshot/load, with the snapshot's memory file
// as a File backend (Firecracker maps it privately), resume_vm, the clone's
// own vsock socket (vsock_override) and tap (network_overrides).
//
// Firecracker's state names each drive's backing file as configured, and a
// load opens those very paths (there is no drive override). So writable
// drives are handed to Firecracker by a path relative to its working
// directory, the run directory: drive-<id>.img, the link Start makes there
// to the drive's file on a cold boot (see linkDrives), the clone's own copy
// after a restore.

var _ snapshotter = (*firecrackerBackend)(nil)

// relativeDrives makes fc's writable drives name their run-directory file.
func relativeDrives(fc *firecracker.Config) {
	for i, d := range fc.Drives {
		if d.IsReadOnly == nil || !*d.IsReadOnly {
			fc.Drives[i].PathOnHost = driveFileName(d.DriveID)
		}
	}
}

func (f *firecrackerBackend) snapshot(ctx context.Context, w *snapshotWriter, copyDisks func() error) (retErr error) {
	info, err := f.client.DescribeInstance(ctx)
	if err != nil {
		return err
	}
	if info.State == firecracker.InstanceStateRunning {
		if err := f.client.PatchVM(ctx, firecracker.VMStatePaused); err != nil {
			return err
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := f.client.PatchVM(cctx, firecracker.VMStateResumed); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("resume after snapshot: %w", err))
			}
		}()
	}
	w.created(snapStateFile)
	w.created(snapMemFile)
	if err := f.client.CreateSnapshot(ctx, firecracker.SnapshotCreateParams{
		SnapshotPath: w.path(snapStateFile),
		MemFilePath:  w.path(snapMemFile),
		SnapshotType: firecracker.SnapshotTypeFull,
	}); err != nil {
		return err
	}
	return copyDisks()
}

// load restores the snapshot into the fresh Firecracker process: PUT
// /snapshot/load before anything else, resuming the guest.
func (f *firecrackerBackend) load(ctx context.Context, b *boot) error {
	p := firecracker.SnapshotLoadParams{
		SnapshotPath: b.restore.path(snapStateFile),
		MemBackend:   &firecracker.MemoryBackend{BackendType: firecracker.MemoryBackendFile, BackendPath: b.restore.path(snapMemFile)},
		ResumeVM:     true,
	}
	if f.vsock != "" {
		p.VsockOverride = &firecracker.VsockOverride{UdsPath: f.vsock}
	}
	if n := b.cfg.Network; n != nil {
		p.NetworkOverrides = []firecracker.NetworkOverride{{IfaceID: firecrackerIfaceID, HostDevName: n.Tap}}
	}
	if err := f.client.LoadSnapshot(ctx, p); err != nil {
		return fmt.Errorf("firecracker: load snapshot: %w", err)
	}
	return nil
}

// firecrackerIfaceID is the iface_id of the guest's network interface.
const firecrackerIfaceID = "eth0"

// bootToken returns the boot's agent token, written to the run directory: a
// fresh one on a cold boot, the snapshot's on a restore.
func (f *firecrackerBackend) bootToken(b *boot) (string, error) {
	if b.restore == nil {
		return newAgentToken(b.runDir)
	}
	return b.restore.token, writeAgentToken(b.runDir, b.restore.token)
}
