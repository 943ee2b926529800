package image

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

type nodeKind int

const (
	kindDir nodeKind = iota + 1
	kindFile
	kindSymlink
	kindCharDev
)

// node is one file of a guest file system tree.
type node struct {
	kind         nodeKind
	perm         uint32 // permission bits, setuid/setgid/sticky included (0o7777)
	data         []byte // kindFile
	target       string // kindSymlink
	major, minor uint32 // kindCharDev
}

// tree is an in-memory guest file system: relative slash paths ("bin/sh")
// to nodes. Adding a path adds its missing parent directories (0755).
// Both the initramfs (cpio) and the root file system (mkfs.ext4 -d) are
// written from a tree, so neither depends on host owners, modes or times.
type tree struct {
	nodes map[string]*node
}

func newTree() *tree { return &tree{nodes: map[string]*node{}} }

func (t *tree) add(p string, n *node) error {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return fmt.Errorf("image: cannot add the root directory")
	}
	if old, ok := t.nodes[p]; ok && !(old.kind == kindDir && n.kind == kindDir) {
		return fmt.Errorf("image: %s added twice", p)
	}
	if dir := path.Dir(p); dir != "." {
		if err := t.mkdir(dir, 0o755); err != nil {
			return err
		}
	}
	t.nodes[p] = n
	return nil
}

// mkdir adds directory p (and parents); an existing directory is kept.
func (t *tree) mkdir(p string, perm uint32) error {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if n, ok := t.nodes[p]; ok {
		if n.kind != kindDir {
			return fmt.Errorf("image: %s exists and is not a directory", p)
		}
		return nil
	}
	return t.add(p, &node{kind: kindDir, perm: perm})
}

func (t *tree) file(p string, perm uint32, data []byte) error {
	return t.add(p, &node{kind: kindFile, perm: perm, data: data})
}

func (t *tree) symlink(p, target string) error {
	return t.add(p, &node{kind: kindSymlink, perm: 0o777, target: target})
}

func (t *tree) charDev(p string, perm uint32, major, minor uint32) error {
	return t.add(p, &node{kind: kindCharDev, perm: perm, major: major, minor: minor})
}

// paths returns every path in byte order, which puts each directory
// before its contents.
func (t *tree) paths() []string { return sortedKeys(t.nodes) }

// materialize writes the tree under dir (which must exist and be empty)
// with the tree's modes and every timestamp set to the epoch, so that
// mkfs.ext4 -d copies nothing host-specific. Device nodes are skipped: the
// guest's devtmpfs provides them.
func (t *tree) materialize(dir string) error {
	paths := t.paths()
	for _, p := range paths {
		n, dst := t.nodes[p], filepath.Join(dir, filepath.FromSlash(p))
		var err error
		switch n.kind {
		case kindDir:
			err = os.Mkdir(dst, 0o700)
		case kindFile:
			err = os.WriteFile(dst, n.data, 0o600)
		case kindSymlink:
			err = os.Symlink(n.target, dst)
		}
		if err != nil {
			return fmt.Errorf("image: stage %s: %w", p, err)
		}
	}
	// Modes and times last, deepest first, so that writing a child does
	// not bump its directory's mtime and read-only dirs stay writable.
	epoch := []unix.Timespec{{}, {}}
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		n, dst := t.nodes[p], filepath.Join(dir, filepath.FromSlash(p))
		if n.kind == kindCharDev {
			continue
		}
		if n.kind != kindSymlink {
			if err := unix.Chmod(dst, n.perm&0o7777); err != nil {
				return fmt.Errorf("image: stage %s: %w", p, err)
			}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, epoch, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("image: stage %s: set times: %w", p, err)
		}
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dir, epoch, 0)
}
