package fsutil

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// CloneNew copies the regular file src to dst, which must not exist yet
// (O_EXCL), created with mode perm, as cheaply as the file system allows: a
// reflink (FICLONE) where it shares blocks (btrfs, xfs), otherwise a sparse
// copy that copies only src's data extents (SEEK_DATA/SEEK_HOLE) with
// copy_file_range and leaves its holes holes. dst has src's size. Use it for
// disk images and guest memory files, which are mostly holes.
func CloneNew(dst, src string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return CloneFromNew(dst, in, perm)
}

// CloneFromNew is CloneNew from an open file (which may have been unlinked
// since it was opened). It uses in's offset: calls on one file must not
// overlap.
func CloneFromNew(dst string, in *os.File, perm os.FileMode) (retErr error) {
	src := in.Name()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return &os.PathError{Op: "clone", Path: src, Err: errors.New("not a regular file")}
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	defer func() {
		if err := out.Close(); err != nil && retErr == nil {
			retErr = err
		}
		if retErr != nil {
			_ = os.Remove(dst)
		}
	}()
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return nil
	}
	return copySparse(out, in, st.Size())
}

// copySparse copies the data extents of in (size bytes) to out, and sets
// out's size to size.
func copySparse(out, in *os.File, size int64) error {
	var off int64
	for off < size {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			// No SEEK_DATA here: copy the rest whole.
			if _, err := in.Seek(off, io.SeekStart); err != nil {
				return err
			}
			if _, err := out.Seek(off, io.SeekStart); err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				return err
			}
			break
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return &os.PathError{Op: "seek", Path: in.Name(), Err: err}
		}
		if err := copyRange(out, in, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return out.Truncate(size)
}

// copyRange copies n bytes at offset off of in to the same offset of out.
func copyRange(out, in *os.File, off, n int64) error {
	for n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(min(n, 1<<30)), 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// copy_file_range unsupported between these files: read and write.
			if _, err := io.Copy(io.NewOffsetWriter(out, off), io.NewSectionReader(in, off, n)); err != nil {
				return err
			}
			return nil
		}
		if c == 0 {
			return &os.PathError{Op: "copy", Path: in.Name(), Err: io.ErrUnexpectedEOF}
		}
		off += int64(c)
		n -= int64(c)
	}
	return nil
}
