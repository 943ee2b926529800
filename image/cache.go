package image

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// cacheComplete reports whether every file img names exists.
func cacheComplete(img *Image) bool {
	for _, p := range []string{img.Kernel, img.Initrd, img.RootFS} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// storeEntry moves the finished build directory tmp to dir in one rename,
// so a cache entry is either complete or absent. When another Build stored
// the same key first, its entry is kept (the contents are identical).
func storeEntry(tmp, dir string, img *Image) error {
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("image: cache: %w", err)
	}
	err := os.Rename(tmp, dir)
	if err == nil {
		return nil
	}
	if cacheComplete(img) {
		return nil // lost a race to an identical build
	}
	if errors.Is(err, os.ErrExist) || isNotEmpty(err) {
		// An incomplete entry (from an older, interrupted layout): replace it.
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			return fmt.Errorf("image: cache: replace %s: %w", dir, rmErr)
		}
		if err = os.Rename(tmp, dir); err == nil || cacheComplete(img) {
			return nil
		}
	}
	return fmt.Errorf("image: cache: %w", err)
}

// isNotEmpty reports a rename onto a non-empty directory.
func isNotEmpty(err error) bool { return errors.Is(err, syscall.ENOTEMPTY) }
