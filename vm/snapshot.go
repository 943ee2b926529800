package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/internal/fsutil"
)

// Snapshots.
//
// A snapshot directory holds everything needed to start copies of a running
// VM (see Machine.Snapshot and Restore): the VMM's device state, the guest's
// memory, a copy of every writable drive, the agent's token, and a manifest
// (ManifestName) written last, so that a directory without a manifest is an
// unfinished snapshot. Read-only drives, the kernel and the initrd are not
// copied: the manifest names them by path, and they must not change while
// the snapshot is in use. The directory is private (0700; its files 0600):
// guest memory holds the guest's secrets.

// ManifestName is the name of a snapshot's manifest in its directory.
const ManifestName = "snapshot.json"

// SnapshotFormat is the format version of the snapshots this package
// writes. Restore refuses a newer one.
const SnapshotFormat = 1

// maxManifest bounds the manifest Restore reads.
const maxManifest = 1 << 20

// Files of a snapshot directory besides the writable drives' copies.
const (
	snapStateFile = "state"       // the VMM's device state
	snapMemFile   = "mem"         // guest memory
	snapTokenFile = "agent.token" // the agent's token (the guest knows it)
)

// Manifest describes a snapshot directory. It is written last, as
// ManifestName, and read by Restore and ReadManifest.
type Manifest struct {
	// Format is the snapshot format version (SnapshotFormat when written).
	Format int `json:"format"`
	// Backend is the VMM that took the snapshot; only it can restore it.
	Backend VMM `json:"backend"`
	// Created is when the snapshot was taken.
	Created time.Time `json:"created"`
	// Config is the configuration a restore needs.
	Config SnapshotConfig `json:"config"`
	// QEMU holds what a QEMU restore must reproduce; nil for Firecracker.
	QEMU *QEMUSnapshot `json:"qemu,omitempty"`
	// Files lists the snapshot's files (names relative to the directory)
	// with their sizes, the manifest excepted.
	Files []SnapshotFile `json:"files"`
}

// SnapshotConfig is the part of a Config a snapshot keeps.
type SnapshotConfig struct {
	VCPUs     int    `json:"vcpus"`
	SMT       bool   `json:"smt,omitempty"`
	MemoryMiB int    `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Initrd    string `json:"initrd,omitempty"`
	BootArgs  string `json:"boot_args"`
	// Drives are the root drive (when the VM has one) and the extra drives,
	// in order. A writable drive's Path is the name of its copy in the
	// snapshot directory; a read-only drive's is its absolute host path.
	Drives []SnapshotDrive `json:"drives,omitempty"`
	// HasRoot says that Drives[0] is the root drive.
	HasRoot bool `json:"has_root,omitempty"`
	// MAC is the guest NIC's MAC address; "" without a network device.
	// Tap is the origin's tap (RestoreOptions.Tap replaces it).
	MAC string `json:"mac,omitempty"`
	Tap string `json:"tap,omitempty"`
	// Vsock says whether the VM has a vsock device; VsockCID is its CID.
	Vsock    bool   `json:"vsock,omitempty"`
	VsockCID uint32 `json:"vsock_cid,omitempty"`
}

// SnapshotDrive is one drive of a snapshot.
type SnapshotDrive struct {
	ID       string `json:"id"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// QEMUSnapshot is what a QEMU restore must reproduce exactly: migration
// needs the same devices.
type QEMUSnapshot struct {
	// Accel is the accelerator the VM ran with ("kvm" or "tcg").
	Accel string `json:"accel"`
	// SerialAgent says that the agent's channel is the virtio-serial port
	// (otherwise vhost-vsock).
	SerialAgent bool `json:"serial_agent"`
}

// SnapshotFile is one file of a snapshot directory.
type SnapshotFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// ErrSnapshot is matched (errors.Is) by every *SnapshotError.
var ErrSnapshot = errors.New("snapshot")

// Reasons a *SnapshotError names, matched with errors.Is.
var (
	// ErrSnapshotBackend: the snapshot was taken by another VMM.
	ErrSnapshotBackend = errors.New("snapshot was taken by another vmm")
	// ErrSnapshotFormat: the manifest's format version is newer than
	// SnapshotFormat, or the manifest is malformed.
	ErrSnapshotFormat = errors.New("unsupported snapshot format")
	// ErrSnapshotIncomplete: the manifest or a file it lists is missing or
	// has the wrong size.
	ErrSnapshotIncomplete = errors.New("snapshot is incomplete")
	// ErrSnapshotUnsupported: this Machine cannot be snapshotted (see
	// Machine.Snapshot).
	ErrSnapshotUnsupported = errors.New("snapshot not supported")
)

// SnapshotError reports a snapshot directory that cannot be written or
// restored. errors.Is(err, ErrSnapshot) holds for every one, and
// errors.Is(err, Reason) for its reason.
type SnapshotError struct {
	// Dir is the snapshot directory.
	Dir string
	// Reason is one of ErrSnapshotBackend, ErrSnapshotFormat,
	// ErrSnapshotIncomplete, ErrSnapshotUnsupported.
	Reason error
	// Detail says what exactly is wrong.
	Detail string
	// Err is the underlying error, if any.
	Err error
}

// Error implements error.
func (e *SnapshotError) Error() string {
	msg := "vm: snapshot " + e.Dir + ": " + e.Reason.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the reason and the underlying error.
func (e *SnapshotError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// Is reports whether target is ErrSnapshot.
func (e *SnapshotError) Is(target error) bool { return target == ErrSnapshot }

// snapshotter is a backend that can snapshot its VM.
type snapshotter interface {
	// snapshot pauses the guest (if it runs), writes the VMM's state to
	// w.path(snapStateFile) and the memory to w.path(snapMemFile), calls
	// copyDisks while the guest is paused and its disks are flushed, and
	// resumes the guest (if it ran). It fills man.QEMU where it applies.
	snapshot(ctx context.Context, w *snapshotWriter, copyDisks func() error) error
}

// snapshotWriter collects a snapshot's files.
type snapshotWriter struct {
	dir   string
	man   *Manifest
	files []string // every file created, for cleanup
}

func (w *snapshotWriter) path(name string) string { return filepath.Join(w.dir, name) }

// created records a file the snapshot wrote.
func (w *snapshotWriter) created(name string) { w.files = append(w.files, name) }

// Snapshot writes a snapshot of the running (or paused) VM into dir: it
// pauses the guest, saves the VMM's device state, the guest memory and a
// copy of every writable drive, resumes the guest (a paused VM stays
// paused), and writes the manifest last. dir must not exist or be empty; it
// is created 0700. On failure everything Snapshot wrote is removed, and the
// VM runs on. ctx bounds the whole call; the guest is resumed even when ctx
// ends.
//
// Under QEMU the VM's memory is a file in its run directory (put the run
// root on tmpfs: the default /run/petty is), copied sparsely (a reflink
// where the file system shares blocks) into the snapshot; the VM must have
// been cold-booted by this package: a Machine restored from a QEMU snapshot
// maps its memory privately and cannot be snapshotted
// (ErrSnapshotUnsupported). Snapshots of one Machine run one at a time.
func (m *Machine) Snapshot(ctx context.Context, dir string) (retErr error) {
	m.snapMu.Lock()
	defer m.snapMu.Unlock()
	_, be, err := m.current(Running, Paused)
	if err != nil {
		return opError("snapshot", m.id, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return opError("snapshot", m.id, err)
	}
	sn, ok := be.(snapshotter)
	if !ok {
		return opError("snapshot", m.id, &SnapshotError{Dir: abs, Reason: ErrSnapshotUnsupported, Detail: "backend " + string(m.cfg.VMM)})
	}
	madeDir, err := makeSnapshotDir(abs)
	if err != nil {
		return opError("snapshot", m.id, err)
	}
	w := &snapshotWriter{dir: abs, man: &Manifest{Format: SnapshotFormat, Backend: m.cfg.VMM, Created: time.Now().UTC()}}
	defer func() {
		if retErr == nil {
			return
		}
		for _, f := range w.files {
			_ = os.Remove(w.path(f))
		}
		if madeDir {
			_ = os.Remove(abs)
		}
		retErr = opError("snapshot", m.id, retErr)
	}()
	began := time.Now()
	w.man.Config = snapshotConfig(&m.cfg)
	tok, err := os.ReadFile(filepath.Join(m.runDir, AgentTokenFile))
	if err != nil {
		return fmt.Errorf("agent token: %w", err)
	}
	if err := writeNewFile(w, snapTokenFile, tok); err != nil {
		return err
	}
	m.mu.Lock()
	files := m.driveFiles
	m.mu.Unlock()
	copyDisks := func() error { return copyWritableDrives(w, &m.cfg, files) }
	if err := sn.snapshot(ctx, w, copyDisks); err != nil {
		return err
	}
	if err := writeManifest(w); err != nil {
		return err
	}
	m.log.Info("snapshot", "dir", abs, "took", time.Since(began))
	return nil
}

// makeSnapshotDir creates dir 0700, or accepts an existing empty directory
// (not a symlink). It reports whether it created dir.
func makeSnapshotDir(dir string) (bool, error) {
	err := os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, os.ErrExist) {
		return false, fmt.Errorf("snapshot directory: %w", err)
	}
	st, lerr := os.Lstat(dir)
	if lerr != nil || !st.IsDir() {
		return false, fmt.Errorf("snapshot directory %s: not a directory", dir)
	}
	ents, rerr := os.ReadDir(dir)
	if rerr != nil {
		return false, fmt.Errorf("snapshot directory: %w", rerr)
	}
	if len(ents) > 0 {
		return false, fmt.Errorf("snapshot directory %s: %w (not empty)", dir, os.ErrExist)
	}
	return false, nil
}

// snapshotConfig is the part of c a snapshot keeps.
func snapshotConfig(c *Config) SnapshotConfig {
	s := SnapshotConfig{
		VCPUs: c.VCPUs, SMT: c.SMT, MemoryMiB: c.MemoryMiB,
		Kernel: c.Kernel, Initrd: c.Initrd, BootArgs: c.BootArgs,
		HasRoot: c.RootDrive.Path != "",
	}
	for _, d := range c.allDrives() {
		p := d.Path
		if !d.ReadOnly {
			p = driveFileName(d.ID)
		}
		s.Drives = append(s.Drives, SnapshotDrive{ID: d.ID, Path: p, ReadOnly: d.ReadOnly})
	}
	if c.Network != nil {
		s.MAC, s.Tap = c.Network.MAC, c.Network.Tap
	}
	if c.Vsock != nil {
		s.Vsock, s.VsockCID = true, c.Vsock.CID
	}
	return s
}

// driveFileName is the name of a writable drive's copy in a snapshot.
func driveFileName(id string) string { return "drive-" + id + ".img" }

// copyWritableDrives copies every writable drive of c into the snapshot,
// from the descriptors Start opened (the caller may have unlinked a drive's
// file since: a sandbox's scratch disk is).
func copyWritableDrives(w *snapshotWriter, c *Config, files map[string]*os.File) error {
	for _, d := range c.allDrives() {
		if d.ReadOnly {
			continue
		}
		name := driveFileName(d.ID)
		f := files[d.ID]
		if f == nil {
			return fmt.Errorf("copy drive %s: not open", d.ID)
		}
		if err := fsutil.CloneFromNew(w.path(name), f, 0o600); err != nil {
			return fmt.Errorf("copy drive %s: %w", d.ID, err)
		}
		w.created(name)
	}
	return nil
}

// linkDrives makes drive-<id>.img in the run directory for every writable
// drive: a hard link to the drive's file (a symlink when the file lies on
// another file system), which is what the VMM opens. So the drive stays
// reachable by a path while the VM runs even when its owner unlinks the
// file (a sandbox's scratch disk), as QEMU's migration needs (it reopens
// the file by path when a snapshot makes the disk read-only for a moment),
// and Firecracker finds a clone's own copy under the same relative name.
// A link left by an earlier boot is kept when the drive's file is gone.
// The caller holds m.mu.
func (m *Machine) linkDrives() error {
	for _, d := range m.cfg.allDrives() {
		if d.ReadOnly {
			continue
		}
		link := filepath.Join(m.runDir, driveFileName(d.ID))
		if link == d.Path {
			continue // a restored clone's own copy
		}
		if _, err := os.Stat(d.Path); errors.Is(err, os.ErrNotExist) {
			if _, lerr := os.Stat(link); lerr == nil {
				continue
			}
		}
		if err := removeIfExists(link); err != nil {
			return err
		}
		if err := os.Link(d.Path, link); err != nil {
			if err := os.Symlink(d.Path, link); err != nil {
				return fmt.Errorf("drive %s: %w", d.ID, err)
			}
		}
	}
	return nil
}

// drivePath is the path the VMM opens for drive d (see linkDrives).
func drivePath(runDir string, d Drive) string {
	if d.ReadOnly {
		return d.Path
	}
	return filepath.Join(runDir, driveFileName(d.ID))
}

// openDrives opens every writable drive for reading, so that Snapshot can
// copy it; closeDrives closes them. The caller holds m.mu.
func (m *Machine) openDrives() error {
	m.closeDrives()
	if err := m.linkDrives(); err != nil {
		return err
	}
	files := map[string]*os.File{}
	for _, d := range m.cfg.allDrives() {
		if d.ReadOnly {
			continue
		}
		f, err := os.Open(drivePath(m.runDir, d))
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return fmt.Errorf("drive %s: %w", d.ID, err)
		}
		files[d.ID] = f
	}
	m.driveFiles = files
	return nil
}

// closeDrives closes the descriptors openDrives opened. The caller holds
// m.mu.
func (m *Machine) closeDrives() {
	for _, f := range m.driveFiles {
		f.Close()
	}
	m.driveFiles = nil
}

// writeNewFile writes a new 0600 file of the snapshot.
func writeNewFile(w *snapshotWriter, name string, data []byte) error {
	f, err := os.OpenFile(w.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	w.created(name)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeManifest lists the snapshot's files with their sizes and writes the
// manifest.
func writeManifest(w *snapshotWriter) error {
	for _, name := range w.files {
		st, err := os.Stat(w.path(name))
		if err != nil {
			return err
		}
		w.man.Files = append(w.man.Files, SnapshotFile{Name: name, Size: st.Size()})
	}
	data, err := jsonIndent(w.man)
	if err != nil {
		return err
	}
	tmp := ManifestName + ".tmp"
	if err := writeNewFile(w, tmp, data); err != nil {
		return err
	}
	if err := os.Rename(w.path(tmp), w.path(ManifestName)); err != nil {
		return err
	}
	w.files[len(w.files)-1] = ManifestName
	return nil
}

// jsonIndent is the manifest's encoding.
func jsonIndent(man *Manifest) ([]byte, error) {
	data, err := json.MarshalIndent(man, "", "  ")
	return append(data, '\n'), err
}
