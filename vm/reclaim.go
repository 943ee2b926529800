package vm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pettyvm/petty/internal/privdir"
)

// ReclaimGrace is how old a run directory without a valid owner record
// must be before Reclaim counts its owner as dead (a Machine writes its
// record when it starts its VMM).
const ReclaimGrace = 10 * time.Minute

// reclaimKillWait bounds how long Reclaim waits for an orphaned VMM to die.
const reclaimKillWait = 2 * time.Second

// RunRoot returns the root of the per-VM run directories for
// Config.RunDir configured ("" means the default), as an absolute path.
func RunRoot(configured string) string {
	if configured == "" {
		configured = defaultRunDir()
	}
	if abs, err := filepath.Abs(configured); err == nil {
		return abs
	}
	return filepath.Clean(configured)
}

// Reclaim frees what dead owners left under runRoot (see RunRoot): for each
// run directory whose owner process (per its owner record: PID and start
// time) is gone, it kills the VM's VMM if it still runs (verified as Attach
// does) and removes the directory. It returns the directories it removed.
//
// Only entries of the expected form are considered: a directory (never a
// symlink, which is not followed) named like a Machine ID and owned by the
// effective user. A directory without a valid owner record counts as dead
// once it is ReclaimGrace old. Nothing outside runRoot is touched, and
// runRoot itself must be a private directory of ours. A missing runRoot is
// not an error. Reclaim is cheap: one directory listing and one small read
// per VM.
func Reclaim(runRoot string) ([]string, error) {
	if !filepath.IsAbs(runRoot) {
		return nil, fmt.Errorf("vm: reclaim %s: the run root must be an absolute path", runRoot)
	}
	runRoot = filepath.Clean(runRoot)
	if err := privdir.Check(runRoot); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("vm: reclaim: %w", err)
	}
	entries, err := os.ReadDir(runRoot)
	if err != nil {
		return nil, fmt.Errorf("vm: reclaim: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !IsID(e.Name()) || e.Type() != os.ModeDir {
			continue // not a run directory (a symlink has ModeSymlink)
		}
		dir := filepath.Join(runRoot, e.Name())
		dead, err := ownerDead(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !dead {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("vm: reclaim %s: %w", dir, err))
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// ownerDead reports whether the run directory dir is ours and its owner is
// dead; it kills the VMM of a dead owner.
func ownerDead(dir string) (bool, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return false, nil // gone meanwhile
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return false, nil
	}
	rec, err := readOwnerRecord(dir)
	if err != nil {
		// Not started yet, or not a Machine's: dead once old enough.
		return time.Since(fi.ModTime()) > ReclaimGrace, nil
	}
	alive, err := rec.ownerAlive()
	if err != nil || alive {
		return false, err
	}
	p, err := rec.openVMM(dir)
	if err != nil {
		return false, err
	}
	if p != nil {
		defer p.Close()
		if err := p.Kill(reclaimKillWait); err != nil {
			return false, fmt.Errorf("vm: reclaim %s: %w", dir, err)
		}
	}
	return true, nil
}
