package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// ErrNotTar is returned (wrapped) when a root file system file is not a
// tar archive (plain, gzip, xz or zstd compressed).
var ErrNotTar = errors.New("image: not a tar archive")

// ErrNoShell is returned (wrapped) when a root file system has no /bin/sh
// (a regular executable file, after symbolic links inside it).
var ErrNoShell = errors.New("image: the root file system has no /bin/sh")

// geteuid is os.Geteuid; tests make a root build take the unprivileged path.
var geteuid = os.Geteuid

// owner is a staged file's owner as the tarball records it.
type owner struct{ uid, gid int }

// staged is a root file system extracted into a directory.
type staged struct {
	dir    string
	owners map[string]owner // slash path relative to dir -> tar owner
	times  map[string]int64 // slash path -> mtime (unix seconds, clamped)
}

// decompress returns a reader of r's plain content, detecting gzip, xz and
// zstd by their magic numbers; anything else is read as is.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %w", ErrNotTar, err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: xz: %w", ErrNotTar, err)
		}
		return xr, func() {}, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: zstd: %w", ErrNotTar, err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// cleanTarName turns a tar member name into a slash path relative to the
// root ("" for the root itself), refusing names that leave it.
func cleanTarName(name string) (string, error) {
	p := path.Clean("/" + name)
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("image: tar member %q leaves the root", name)
		}
	}
	return strings.TrimPrefix(p, "/"), nil
}

// extractTar extracts the tar archive r (possibly compressed) into the
// empty directory dir, through an os.Root so that no member or symbolic
// link can write outside it. Device nodes and FIFOs are skipped (the
// guest's devtmpfs provides /dev). Owners are applied when running as
// root and recorded either way; file times are clamped to clamp when it
// is positive.
func extractTar(ctx context.Context, r io.Reader, dir string, clamp int64) (*staged, error) {
	plain, closeFn, err := decompress(r)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("image: extract: %w", err)
	}
	defer root.Close()
	st := &staged{dir: dir, owners: map[string]owner{}, times: map[string]int64{}}
	asRoot := geteuid() == 0
	type dirMode struct {
		p    string
		mode fs.FileMode
	}
	var dirModes []dirMode
	tr := tar.NewReader(plain)
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return nil, fmt.Errorf("%w: no members", ErrNotTar)
			}
			break
		}
		if err != nil {
			if n == 0 {
				return nil, fmt.Errorf("%w: %w", ErrNotTar, err)
			}
			return nil, fmt.Errorf("image: read tar: %w", err)
		}
		p, err := cleanTarName(hdr.Name)
		if err != nil {
			return nil, err
		}
		if p == "" {
			continue // the root directory: 0755 root:root
		}
		if d := path.Dir(p); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		if hdr.Mode&04000 != 0 {
			mode |= fs.ModeSetuid
		}
		if hdr.Mode&02000 != 0 {
			mode |= fs.ModeSetgid
		}
		if hdr.Mode&01000 != 0 {
			mode |= fs.ModeSticky
		}
		if hdr.Typeflag != tar.TypeDir {
			if err := removeExisting(root, p); err != nil {
				return nil, err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
			dirModes = append(dirModes, dirMode{p, mode})
		case tar.TypeReg, tar.TypeRegA:
			f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, p); err != nil {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
		case tar.TypeLink:
			target, err := cleanTarName(hdr.Linkname)
			if err != nil {
				return nil, err
			}
			if err := root.Link(target, p); err != nil {
				return nil, fmt.Errorf("image: extract %s: hard link to %s: %w", p, target, err)
			}
			continue // same inode: owner, mode and times are the target's
		default:
			continue // devices, FIFOs, GNU extensions
		}
		o := owner{hdr.Uid, hdr.Gid}
		st.owners[p] = o
		mt := hdr.ModTime.Unix()
		if clamp > 0 && mt > clamp {
			mt = clamp
		}
		st.times[p] = mt
		if asRoot {
			if err := root.Lchown(p, o.uid, o.gid); err != nil {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
			// After the chown, which clears setuid bits.
			if err := root.Chmod(p, mode); err != nil {
				return nil, fmt.Errorf("image: extract %s: %w", p, err)
			}
		}
	}
	for i := len(dirModes) - 1; i >= 0; i-- {
		if err := root.Chmod(dirModes[i].p, dirModes[i].mode); err != nil {
			return nil, fmt.Errorf("image: extract %s: %w", dirModes[i].p, err)
		}
	}
	return st, nil
}

// removeExisting removes p (a later tar member replaces an earlier one).
func removeExisting(root *os.Root, p string) error {
	fi, err := root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("image: extract %s: %w", p, err)
	}
	if fi.IsDir() {
		err = root.RemoveAll(p)
	} else {
		err = root.Remove(p)
	}
	if err != nil {
		return fmt.Errorf("image: extract %s: %w", p, err)
	}
	return nil
}

// walk lists every path under the staged root (the root itself excluded),
// in lexical order, without following symbolic links.
func (st *staged) walk() ([]string, error) {
	var out []string
	err := filepath.WalkDir(st.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == st.dir {
			return nil
		}
		rel, err := filepath.Rel(st.dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("image: stage: %w", err)
	}
	return out, nil
}

// setTimes sets every path's access and modification times to its
// recorded (clamped) mtime, or to def when it has none (directories made
// as parents, files petty added). Deepest first, so that no change
// touches a directory already done.
func (st *staged) setTimes(paths []string, def int64) error {
	for i := len(paths) - 1; i >= -1; i-- {
		p, t := ".", def
		if i >= 0 {
			p = paths[i]
			if mt, ok := st.times[p]; ok {
				t = mt
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(t * 1e9), unix.NsecToTimespec(t * 1e9)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(st.dir, filepath.FromSlash(p)), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("image: stage %s: set times: %w", p, err)
		}
	}
	return nil
}

// maxSymlinks bounds symbolic links followed when resolving a path.
const maxSymlinks = 40

// resolveInRoot follows p (slash, relative to dir) inside dir the way the
// guest would, absolute symbolic links meaning dir, and returns the final
// host path. It never leaves dir.
func resolveInRoot(dir, p string) (string, error) {
	var done []string
	todo := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	links := 0
	for len(todo) > 0 {
		el := todo[0]
		todo = todo[1:]
		switch el {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := filepath.Join(append([]string{dir}, append(done, el)...)...)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, el)
			continue
		}
		if links++; links > maxSymlinks {
			return "", fmt.Errorf("image: %s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(append([]string{dir}, done...)...), nil
}

// checkShell returns an error wrapping ErrNoShell unless the tree at dir
// has /bin/sh.
func checkShell(dir string) error {
	p, err := resolveInRoot(dir, "bin/sh")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoShell, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoShell, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%w: /bin/sh is not an executable file", ErrNoShell)
	}
	return nil
}
