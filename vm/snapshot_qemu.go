package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pettyvm/petty/internal/fsutil"
	"github.com/pettyvm/petty/qemu"
)

// QEMU snapshots.
//
// Every cold-booted QEMU VM keeps its RAM in a file of its run directory
// (memory-backend-file, share=on): QEMU's migration, with the x-ignore-shared
// capability, then saves only the device state (a few hundred KiB), and the
// memory is that file, copied sparsely while the guest is paused. A restore
// maps the snapshot's copy privately (share=off: copy-on-write), so that it
// reads no memory up front, clones share the pages they do not write, and no
// clone ever writes into the snapshot (restore_qemu.go).

// Names in a QEMU VM's run directory.
const (
	qemuMemName     = "mem"          // the guest's RAM (cold boots)
	migrateSockName = "migrate.sock" // where Snapshot receives the state
)

// qemuMemID is the id of the RAM's memory backend; migration matches RAM
// blocks by name, so it is the same in every VM and clone.
const qemuMemID = "mem"

// Migration tuning of a snapshot.
const (
	// migrateBandwidth lifts QEMU's default 32 MiB/s migration limit.
	migrateBandwidth = 1 << 40
	// migratePollMin and migratePollMax bound the query-migrate polls.
	migratePollMin = 200 * time.Microsecond
	migratePollMax = 20 * time.Millisecond
)

var _ snapshotter = (*qemuBackend)(nil)

// memoryArgs adds the guest RAM's memory backend to cmd: the run
// directory's shared file on a cold boot, the snapshot's memory mapped
// privately on a restore (with -incoming defer and the state file).
func (q *qemuBackend) memoryArgs(b *boot, cmd *exec.Cmd) error {
	size := strconv.Itoa(b.cfg.MemoryMiB) + "M"
	backend := func(path, share string) []string {
		return []string{
			"-object", "memory-backend-file,id=" + qemuMemID + ",size=" + size + ",mem-path=" + escapeOpt(path) + ",share=" + share,
			"-machine", "memory-backend=" + qemuMemID,
		}
	}
	if b.restore == nil && len(b.cfg.Shares) > 0 {
		// qemu.Spec gives a VM with virtio-fs shares its shared memfd RAM
		// (the memory virtiofsd maps); a second "mem" object would be a
		// duplicate ID. Such a VM has no memory file: Snapshot refuses it.
		return nil
	}
	if b.restore == nil {
		q.memPath = filepath.Join(b.runDir, qemuMemName)
		if err := removeIfExists(q.memPath); err != nil { // a fresh boot gets fresh memory
			return err
		}
		cmd.Args = append(cmd.Args, backend(q.memPath, "on")...)
		return nil
	}
	f, err := os.Open(b.restore.path(snapStateFile))
	if err != nil {
		return &SnapshotError{Dir: b.restore.dir, Reason: ErrSnapshotIncomplete, Err: err}
	}
	q.stateFile = f
	q.stateFD = 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	cmd.Args = append(cmd.Args, backend(b.restore.path(snapMemFile), "off")...)
	cmd.Args = append(cmd.Args, "-incoming", "defer")
	return nil
}

// escapeOpt doubles the commas of a value inside a QEMU option list.
func escapeOpt(v string) string {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		out = append(out, v[i])
		if v[i] == ',' {
			out = append(out, ',')
		}
	}
	return string(out)
}

// migrateStatus is the part of query-migrate's answer a snapshot reads.
type migrateStatus struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
}

// setIgnoreShared turns on migration's x-ignore-shared capability: shared
// RAM (the memory file) is not sent.
func setIgnoreShared(ctx context.Context, c *qemu.QMP) error {
	return c.Execute(ctx, "migrate-set-capabilities", map[string]any{
		"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}},
	}, nil)
}

// snapshot saves the device state through a unix socket that QEMU's
// migration connects to (QEMU's seccomp filter forbids exec:, and 7.2 has
// no file: migration), copies the memory file and the disks while the guest
// is paused, and resumes it.
func (q *qemuBackend) snapshot(ctx context.Context, w *snapshotWriter, copyDisks func() error) (retErr error) {
	if q.memPath == "" && len(q.spec.FS) > 0 {
		return &SnapshotError{Dir: w.dir, Reason: ErrSnapshotUnsupported,
			Detail: "a VM with virtio-fs shares (vhost-user devices) cannot be snapshotted"}
	}
	if q.memPath == "" {
		return &SnapshotError{Dir: w.dir, Reason: ErrSnapshotUnsupported,
			Detail: "a VM restored from a QEMU snapshot maps its memory privately; snapshot the original"}
	}
	c, err := q.client()
	if err != nil {
		return err
	}
	w.man.QEMU = &QEMUSnapshot{Accel: q.spec.Accel, SerialAgent: q.spec.AgentSocket != ""}
	if err := setIgnoreShared(ctx, c); err != nil {
		return err
	}
	if err := c.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": migrateBandwidth}, nil); err != nil {
		return err
	}
	st, err := c.QueryStatus(ctx)
	if err != nil {
		return err
	}
	if st.Status == "running" {
		if err := c.Stop(ctx); err != nil {
			return err
		}
		defer func() {
			// The guest runs on, whatever happened (and even when ctx ended).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := c.Cont(cctx); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("resume after snapshot: %w", err))
			}
		}()
	}
	if err := q.saveState(ctx, c, w); err != nil {
		return err
	}
	// Migration completed: the vCPUs are stopped and the disks flushed.
	if err := fsutil.CloneNew(w.path(snapMemFile), q.memPath, 0o600); err != nil {
		return fmt.Errorf("copy memory: %w", err)
	}
	w.created(snapMemFile)
	return copyDisks()
}

// saveState migrates the device state into the snapshot's state file.
func (q *qemuBackend) saveState(ctx context.Context, c *qemu.QMP, w *snapshotWriter) error {
	sock := filepath.Join(q.boot.runDir, migrateSockName)
	if err := removeIfExists(sock); err != nil {
		return err
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("migration socket: %w", err)
	}
	defer removeIfExists(sock)
	defer l.Close()
	out, err := os.OpenFile(w.path(snapStateFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w.created(snapStateFile)
	defer out.Close()
	copied := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			copied <- err
			return
		}
		defer conn.Close()
		_, err = io.Copy(out, conn)
		copied <- err
	}()
	stopCopy := context.AfterFunc(ctx, func() { l.Close() })
	defer stopCopy()
	if err := c.Execute(ctx, "migrate", map[string]any{"uri": "unix:" + sock}, nil); err != nil {
		return err
	}
	if err := waitMigration(ctx, c); err != nil {
		_ = c.Execute(context.WithoutCancel(ctx), "migrate_cancel", nil, nil)
		return err
	}
	select {
	case err := <-copied:
		if err != nil {
			return fmt.Errorf("save state: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	return out.Sync()
}

// waitMigration polls query-migrate until the migration completed or
// failed.
func waitMigration(ctx context.Context, c *qemu.QMP) error {
	delay := migratePollMin
	for {
		var st migrateStatus
		if err := c.Execute(ctx, "query-migrate", nil, &st); err != nil {
			return err
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("qemu: migration %s: %s", st.Status, st.ErrorDesc)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, migratePollMax)
	}
}
