package vm

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pettyvm/petty/qemu"
)

// restoreHost makes the QEMU host description of a restore match the
// snapshot's devices: migration needs exactly the same ones.
func restoreHost(h *qemuHost, p *restorePlan) error {
	qs := p.man.QEMU
	if qs == nil {
		return &SnapshotError{Dir: p.dir, Reason: ErrSnapshotFormat, Detail: "no qemu section"}
	}
	if !qs.SerialAgent && !h.vhostVsock {
		return &SnapshotError{Dir: p.dir, Reason: ErrSnapshotUnsupported,
			Detail: "the snapshot's agent channel is vhost-vsock, and /dev/vhost-vsock is not usable here"}
	}
	if qs.SerialAgent {
		h.vhostVsock = false
	}
	return nil
}

// startIncoming feeds the snapshot's device state to QEMU (started with
// -incoming defer): x-ignore-shared as at the snapshot, then the state
// file's descriptor. QEMU runs the guest once the state is loaded (it
// exits when it cannot load it).
func (q *qemuBackend) startIncoming(ctx context.Context, c *qemu.QMP) error {
	defer q.closeStateFile()
	if err := setIgnoreShared(ctx, c); err != nil {
		return err
	}
	if err := c.Execute(ctx, "migrate-incoming", map[string]any{"uri": "fd:" + strconv.Itoa(q.stateFD)}, nil); err != nil {
		return fmt.Errorf("qemu: load snapshot state: %w", err)
	}
	if err := waitMigration(ctx, c); err != nil {
		return fmt.Errorf("qemu: load snapshot state: %w", err)
	}
	// The guest was paused when its state was saved: run it.
	st, err := c.QueryStatus(ctx)
	if err != nil {
		return err
	}
	if st.Status == "paused" {
		return c.Cont(ctx)
	}
	return nil
}

// closeStateFile closes this process's copy of the snapshot's state file.
func (q *qemuBackend) closeStateFile() {
	q.mu.Lock()
	f := q.stateFile
	q.stateFile = nil
	q.mu.Unlock()
	if f != nil {
		_ = f.Close()
	}
}

// bootToken returns the boot's agent token, written to the run directory: a
// fresh one on a cold boot, the snapshot's on a restore (the guest's agent
// knows only that one).
func (q *qemuBackend) bootToken(b *boot) (string, error) {
	if b.restore == nil {
		return newAgentToken(b.runDir)
	}
	return b.restore.token, writeAgentToken(b.runDir, b.restore.token)
}
