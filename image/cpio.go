package image

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// newc mode bits (octal) as cpio and the kernel's initramfs unpacker expect.
const (
	cpioModeDir     = 0o040000
	cpioModeFile    = 0o100000
	cpioModeSymlink = 0o120000
	cpioModeChar    = 0o020000
	cpioTrailer     = "TRAILER!!!"
)

// writeNewc writes t as a cpio archive in the "newc" (070701) format the
// kernel unpacks as an initramfs. The output depends on t's contents only:
// entries are sorted by path (so every directory precedes its contents),
// inode numbers count up from 1 in that order, and owners and mtimes are 0.
func writeNewc(w io.Writer, t *tree) error {
	paths := t.paths()
	for i, p := range paths {
		n := t.nodes[p]
		var mode, nlink uint32
		var data []byte
		var major, minor uint32
		switch n.kind {
		case kindDir:
			mode, nlink = cpioModeDir, 2
		case kindFile:
			mode, nlink, data = cpioModeFile, 1, n.data
		case kindSymlink:
			mode, nlink, data = cpioModeSymlink, 1, []byte(n.target)
		case kindCharDev:
			mode, nlink, major, minor = cpioModeChar, 1, n.major, n.minor
		default:
			return fmt.Errorf("image: cpio: %s: unknown node kind %d", p, n.kind)
		}
		mode |= n.perm & 0o7777
		if err := writeNewcEntry(w, uint32(i+1), mode, nlink, major, minor, p, data); err != nil {
			return err
		}
	}
	return writeNewcEntry(w, 0, 0, 1, 0, 0, cpioTrailer, nil)
}

func writeNewcEntry(w io.Writer, ino, mode, nlink, rmajor, rminor uint32, name string, data []byte) error {
	if strings.ContainsRune(name, 0) {
		return fmt.Errorf("image: cpio: name %q contains NUL", name)
	}
	if uint64(len(data)) > 0xffffffff {
		return fmt.Errorf("image: cpio: %s: %d bytes exceed the newc size field", name, len(data))
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err := w.Write(make([]byte, pad4(len(data))))
	return err
}

// pad4 returns how many NUL bytes bring n up to a multiple of 4.
func pad4(n int) int { return (4 - n%4) % 4 }

// sortedKeys returns m's keys in byte order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
