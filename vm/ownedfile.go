package vm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// ownedFile is a socket path outside the run directory that a VMM creates
// (a user-supplied Vsock.Path). vm never unlinks a path it did not create:
// a boot claims the path only when nothing exists there, and after the VMM
// has been reaped removes only a socket owned by this user that appeared
// meanwhile. A socket this Machine's earlier boot left behind (its removal
// failed) is recognised by its device and inode and may be replaced.
type ownedFile struct {
	path string
	what string // the Config field, for errors

	mu      sync.Mutex
	claimed bool          // the current boot found the path free
	left    *fileIdentity // a socket an earlier boot created and could not remove
}

// fileIdentity identifies a file across renames.
type fileIdentity struct{ dev, ino uint64 }

func identity(fi fs.FileInfo) *fileIdentity {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &fileIdentity{dev: st.Dev, ino: st.Ino}
}

// claim checks, before a boot, that the path is free. A nil f claims
// nothing.
func (f *ownedFile) claim() error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Lstat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		f.claimed = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", f.what, f.path, err)
	}
	if id := identity(fi); f.left != nil && id != nil && *id == *f.left && fi.Mode().Type() == fs.ModeSocket {
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s %q: remove the socket of an earlier boot: %w", f.what, f.path, err)
		}
		f.left, f.claimed = nil, true
		return nil
	}
	return fmt.Errorf("%s %q (%s): %w", f.what, f.path, fileKind(fi), ErrPathInUse)
}

// release removes, once the VMM has been reaped, the socket it created at
// the claimed path. It is safe to call more than once, and on a nil f.
func (f *ownedFile) release() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.claimed {
		return
	}
	f.claimed = false
	fi, err := os.Lstat(f.path)
	if err != nil || fi.Mode().Type() != fs.ModeSocket {
		return // nothing there, or not what a VMM makes
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return // another user's: not ours to remove
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.left = identity(fi)
	}
}

// fileKind names the type of an existing file for error messages.
func fileKind(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "a special file"
	}
}
