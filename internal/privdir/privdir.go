// Package privdir creates and checks the private directories petty keeps
// state in (run directories, state records, caches). Other local users are
// untrusted: a directory petty reuses must be a real directory (not a
// symlink), owned by the effective user, with no group or other access.
package privdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafe is returned (wrapped in *UnsafeError) when a directory exists
// but fails the checks.
var ErrUnsafe = errors.New("unsafe directory")

// UnsafeError says which directory failed which check.
type UnsafeError struct {
	Path   string
	Reason string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("%s: %s: %s (remove it, or fix its owner and mode to 0700)", ErrUnsafe, e.Path, e.Reason)
}

// Unwrap makes errors.Is(err, ErrUnsafe) hold.
func (e *UnsafeError) Unwrap() error { return ErrUnsafe }

// Ensure makes dir (and missing parents) exist and checks it: the leaf is
// created 0700 if missing, and whether new or old it must be a directory, not
// a symlink, owned by the effective user, with mode bits 0700 or fewer.
// Parents that Ensure creates are 0700 too; existing parents are not
// checked (they may be /run, /tmp or a home directory), but a parent that
// is group- or world-writable without the sticky bit is refused, since
// another user could swap the leaf.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		if cerr := Check(dir); errors.Is(cerr, ErrUnsafe) {
			return cerr
		}
		return err
	}
	return Check(dir)
}

// Check verifies an existing directory as Ensure does, without creating it.
func Check(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return &UnsafeError{dir, "is a symbolic link"}
	}
	if !fi.IsDir() {
		return &UnsafeError{dir, "is not a directory"}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &UnsafeError{dir, "cannot read its owner"}
	}
	if int(st.Uid) != os.Geteuid() {
		return &UnsafeError{dir, fmt.Sprintf("owned by uid %d, not %d", st.Uid, os.Geteuid())}
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return &UnsafeError{dir, fmt.Sprintf("mode %04o gives access to other users", fi.Mode().Perm())}
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if pfi, err := os.Stat(parent); err == nil {
		if pfi.Mode().Perm()&0o022 != 0 && pfi.Mode()&os.ModeSticky == 0 {
			if pst, ok := pfi.Sys().(*syscall.Stat_t); !ok || int(pst.Uid) != os.Geteuid() {
				return &UnsafeError{dir, fmt.Sprintf("its parent %s is writable by others", parent)}
			}
		}
	}
	return nil
}
