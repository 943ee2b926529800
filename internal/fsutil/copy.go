// Package fsutil holds small file-system helpers shared by petty's
// packages.
package fsutil

import (
	"io"
	"os"
)

// CopyNew copies the regular file src to dst, which must not exist yet
// (O_EXCL: an existing file or symlink at dst is never followed or
// overwritten), created with mode perm. io.Copy uses copy_file_range, so
// file systems with reflinks share the blocks.
func CopyNew(dst, src string, perm os.FileMode) (retErr error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err := out.Close(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
