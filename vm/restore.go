package vm

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pettyvm/petty/internal/fsutil"
)

// RestoreOptions are the per-clone settings of Restore. Zero values mean
// the documented defaults; Restore never modifies them.
type RestoreOptions struct {
	// VMM, when set, is the monitor the caller expects; a snapshot taken by
	// another fails with ErrSnapshotBackend. Default: the snapshot's.
	VMM VMM
	// RunDir is the root of the clone's run directory, as Config.RunDir.
	RunDir string
	// FirecrackerBin and QEMUBin are the VMM executables, as in Config.
	FirecrackerBin string
	QEMUBin        string
	// Hostname is the clone's host name, set by the agent after the
	// restore. Default: the snapshot's (unchanged).
	Hostname string
	// Tap, when set, replaces the snapshot's tap device (Network.Tap): two
	// clones cannot share one. The guest keeps its MAC address.
	Tap string
	// VsockPath is the clone's hybrid-vsock socket under Firecracker
	// (Vsock.Path). Default: a socket in the clone's run directory.
	VsockPath string
	// Console and Logger are as in Config.
	Console io.Writer
	Logger  *slog.Logger
}

// restorePlan is what a restoring boot needs (boot.restore).
type restorePlan struct {
	dir   string
	man   *Manifest
	token string
}

// path returns the absolute path of a snapshot file.
func (p *restorePlan) path(name string) string { return filepath.Join(p.dir, name) }

// refreshEntropyBytes is how much host entropy a clone's agent mixes into
// the guest's RNG.
const refreshEntropyBytes = 64

// Restore starts a running Machine from the snapshot in dir (see
// Machine.Snapshot) and returns it once its agent answered and took the
// clone's identity: the host sends it fresh entropy, which it mixes into the
// kernel RNG (and reseeds the CRNG), the current wall-clock time and the
// host name (agent.Client.Refresh), so that no two clones share RNG state
// or a stale clock. ctx bounds the whole restore; on failure the Machine is
// destroyed.
//
// Any number of Machines may be restored from one directory at once: a
// clone never writes into the snapshot's files. Its writable drives are
// sparse copies (reflinks where the file system shares blocks) in its own
// run directory, and its memory is the snapshot's memory file mapped
// privately (copy-on-write): a QEMU restore reads no memory up front and
// clones share the pages they have not written. Errors about the directory
// are *SnapshotError (errors.Is(err, ErrSnapshot)): another backend's
// snapshot, a newer format, a missing or truncated file.
func Restore(ctx context.Context, dir string, opts RestoreOptions) (_ *Machine, retErr error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	man, err := ReadManifest(abs)
	if err != nil {
		return nil, err
	}
	if opts.VMM != "" && opts.VMM != man.Backend {
		return nil, &SnapshotError{Dir: abs, Reason: ErrSnapshotBackend,
			Detail: fmt.Sprintf("taken by %s, restoring with %s", man.Backend, opts.VMM)}
	}
	tok, err := os.ReadFile(filepath.Join(abs, snapTokenFile))
	if err != nil {
		return nil, &SnapshotError{Dir: abs, Reason: ErrSnapshotIncomplete, Err: err}
	}
	cfg := restoreConfig(abs, man, &opts)
	m, err := New(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = m.Destroy(context.WithoutCancel(ctx))
		}
	}()
	began := time.Now()
	m.restore = &restorePlan{dir: abs, man: man, token: strings.TrimSpace(string(tok))}
	if err := m.MakeRunDir(); err != nil {
		return nil, err
	}
	if err := m.copyDrivesIn(abs); err != nil {
		return nil, opError("restore", m.id, err)
	}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	if err := m.refresh(ctx, opts.Hostname); err != nil {
		return nil, err
	}
	m.log.Info("restored", "dir", abs, "ready", time.Since(began))
	return m, nil
}

// restoreConfig is the clone's Config: the snapshot's, with the clone's
// options. Writable drives name the snapshot's copies (New validates them);
// copyDrivesIn replaces them with the clone's own.
func restoreConfig(dir string, man *Manifest, o *RestoreOptions) Config {
	s := man.Config
	c := Config{
		VMM: man.Backend, VCPUs: s.VCPUs, SMT: s.SMT, MemoryMiB: s.MemoryMiB,
		Kernel: s.Kernel, Initrd: s.Initrd, BootArgs: s.BootArgs,
		FirecrackerBin: o.FirecrackerBin, QEMUBin: o.QEMUBin,
		RunDir: o.RunDir, Console: o.Console, Logger: o.Logger,
	}
	if man.QEMU != nil {
		c.Accel = man.QEMU.Accel
	}
	for i, d := range s.Drives {
		p := d.Path
		if !d.ReadOnly {
			p = filepath.Join(dir, d.Path)
		}
		drive := Drive{ID: d.ID, Path: p, ReadOnly: d.ReadOnly}
		if i == 0 && s.HasRoot {
			c.RootDrive = drive
		} else {
			c.Drives = append(c.Drives, drive)
		}
	}
	if s.MAC != "" {
		c.Network = &Network{Tap: cmp.Or(o.Tap, s.Tap), MAC: s.MAC}
	}
	if s.Vsock {
		c.Vsock = &Vsock{CID: s.VsockCID, Path: o.VsockPath}
		if man.Backend == QEMU {
			c.Vsock.CID = 0 // vhost-vsock CIDs are global: a fresh one
		}
	}
	return c
}

// copyDrivesIn gives the clone its own copy of every writable drive, in its
// run directory.
func (m *Machine) copyDrivesIn(dir string) error {
	cp := func(d *Drive) error {
		if d.Path == "" || d.ReadOnly {
			return nil
		}
		dst := filepath.Join(m.runDir, filepath.Base(d.Path))
		if err := fsutil.CloneNew(dst, d.Path, 0o600); err != nil {
			return fmt.Errorf("copy drive %s: %w", d.ID, err)
		}
		d.Path = dst
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := cp(&m.cfg.RootDrive); err != nil {
		return err
	}
	for i := range m.cfg.Drives {
		if err := cp(&m.cfg.Drives[i]); err != nil {
			return err
		}
	}
	return nil
}

// refresh tells the clone's agent that it is a new machine.
func (m *Machine) refresh(ctx context.Context, hostname string) error {
	began := time.Now()
	c, err := m.Agent(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	answered := time.Now()
	seed := make([]byte, refreshEntropyBytes)
	if _, err := rand.Read(seed); err != nil {
		return opError("restore", m.id, err)
	}
	if err := c.Refresh(ctx, seed, time.Now(), hostname); err != nil {
		return opError("restore", m.id, fmt.Errorf("refresh the agent: %w", err))
	}
	m.log.Debug("agent refreshed", "agent", answered.Sub(began), "refresh", time.Since(answered))
	return nil
}

// ReadManifest reads and checks the manifest of the snapshot in dir: its
// format version, its backend, and that every file it lists is there with
// its size. Errors are *SnapshotError.
func ReadManifest(dir string) (*Manifest, error) {
	incomplete := func(detail string, err error) error {
		return &SnapshotError{Dir: dir, Reason: ErrSnapshotIncomplete, Detail: detail, Err: err}
	}
	data, err := readFileLimit(filepath.Join(dir, ManifestName), maxManifest)
	if err != nil {
		return nil, incomplete("manifest", err)
	}
	var man Manifest
	if err := json.Unmarshal(data, &man); err != nil {
		return nil, &SnapshotError{Dir: dir, Reason: ErrSnapshotFormat, Detail: "manifest", Err: err}
	}
	switch {
	case man.Format > SnapshotFormat:
		return nil, &SnapshotError{Dir: dir, Reason: ErrSnapshotFormat,
			Detail: fmt.Sprintf("format %d is newer than this petty's %d", man.Format, SnapshotFormat)}
	case man.Format < 1:
		return nil, &SnapshotError{Dir: dir, Reason: ErrSnapshotFormat, Detail: fmt.Sprintf("format %d", man.Format)}
	}
	switch man.Backend {
	case QEMU:
		if man.QEMU == nil {
			return nil, &SnapshotError{Dir: dir, Reason: ErrSnapshotFormat, Detail: "qemu snapshot without its qemu section"}
		}
	case Firecracker:
	default:
		return nil, &SnapshotError{Dir: dir, Reason: ErrSnapshotBackend, Detail: fmt.Sprintf("unknown backend %q", man.Backend)}
	}
	listed := map[string]bool{}
	for _, f := range man.Files {
		if f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." {
			return nil, &SnapshotError{Dir: dir, Reason: ErrSnapshotFormat, Detail: fmt.Sprintf("file name %q", f.Name)}
		}
		listed[f.Name] = true
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			return nil, incomplete(f.Name, err)
		}
		if !st.Mode().IsRegular() || st.Size() != f.Size {
			return nil, incomplete(fmt.Sprintf("%s: %d bytes, want %d", f.Name, st.Size(), f.Size), nil)
		}
	}
	for _, name := range []string{snapStateFile, snapMemFile, snapTokenFile} {
		if !listed[name] {
			return nil, incomplete(name+" is not listed", nil)
		}
	}
	for _, d := range man.Config.Drives {
		if !d.ReadOnly && !listed[d.Path] {
			return nil, incomplete(fmt.Sprintf("drive %s: %s is not listed", d.ID, d.Path), nil)
		}
	}
	return &man, nil
}

// readFileLimit reads at most limit bytes of path; a longer file is an error.
func readFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errors.New("larger than " + fmt.Sprint(limit) + " bytes")
	}
	return data, nil
}
