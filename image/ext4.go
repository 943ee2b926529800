package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ext4Tools are the e2fsprogs executables that write a root file system.
type ext4Tools struct {
	mkfs, debugfs string
	sum           string // of both, part of the cache key
}

// findExt4Tools finds mkfs.ext4 and debugfs and hashes them.
func findExt4Tools() (ext4Tools, error) {
	var t ext4Tools
	var err error
	if t.mkfs, err = findSbinTool(mkfsName); err != nil {
		return t, err
	}
	if t.debugfs, err = findSbinTool(debugfsName); err != nil {
		return t, err
	}
	for _, p := range []string{t.mkfs, t.debugfs} {
		sum, err := fileSum(p)
		if err != nil {
			return t, fmt.Errorf("image: %w", err)
		}
		t.sum += sum
	}
	return t, nil
}

// ext4Size returns a size in MiB and an inode count that fit the tree at
// dir with some room: the base is read-only, so little slack is needed.
// Both depend on the tree only.
func ext4Size(dir string) (mib int64, inodes int64, err error) {
	const block = 4096
	var blocks, count int64
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && sys.Nlink > 1 {
			if seen[sys.Ino] {
				return nil
			}
			seen[sys.Ino] = true
		}
		count++
		switch {
		case fi.Mode().IsRegular():
			blocks += (fi.Size() + block - 1) / block
			blocks += fi.Size() / (block * 340) // extent index blocks of big files
		case fi.IsDir():
			blocks++
		case fi.Mode()&fs.ModeSymlink != 0 && fi.Size() >= 60:
			blocks++
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("image: rootfs size: %w", err)
	}
	inodes = count + count/8 + 256
	bytes := blocks*block + inodes*256
	bytes += bytes/8 + 8<<20
	mib = (bytes + 1<<20 - 1) >> 20
	return mib, inodes, nil
}

// makeExt4 writes an ext4 image of the staged tree at st.dir to dst:
// no journal (the base is only ever mounted read-only), UUID and directory
// hash seed derived from key, every time fixed (E2FSPROGS_FAKE_TIME, the
// staged times, then debugfs sets each inode's ctime, which mkfs.ext4 -d
// copies from the host and no one can set, and its atime, which reading
// it may have changed, to its mtime). Owners come
// from the staged files when running as root, else debugfs sets those the
// tarball recorded. Same tree and key, same bytes.
func makeExt4(ctx context.Context, tools ext4Tools, dst string, st *staged, key string, epoch int64, extraMiB int64) error {
	paths, err := st.walk()
	if err != nil {
		return err
	}
	if err := st.setTimes(paths, epoch); err != nil {
		return err
	}
	mib, inodes, err := ext4Size(st.dir)
	if err != nil {
		return err
	}
	mib += extraMiB
	work, err := os.MkdirTemp(filepath.Dir(dst), ".mkfs-")
	if err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}
	defer os.RemoveAll(work)
	conf := filepath.Join(work, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o600); err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}
	seed := sha256.Sum256([]byte("petty-store-rootfs\x00" + key))
	env := append(os.Environ(),
		"MKE2FS_CONFIG="+conf,
		"E2FSPROGS_FAKE_TIME="+strconv.FormatInt(max(epoch, 1), 10),
		"SOURCE_DATE_EPOCH="+strconv.FormatInt(max(epoch, 1), 10),
		"MKE2FS_DEVICE_SECTSIZE=512",
		"MKE2FS_DEVICE_PHYS_SECTSIZE=512",
		"E2FSPROGS_LIBMAGIC_SUPPRESS=1",
	)
	cmd := exec.CommandContext(ctx, tools.mkfs,
		"-q", "-F", "-t", "ext4",
		"-O", "^has_journal",
		"-L", "petty-root",
		"-U", uuidString(seed[:16]),
		"-m", "0",
		"-N", strconv.FormatInt(inodes, 10),
		"-E", "root_owner=0:0,hash_seed="+uuidString(seed[16:])+",nodiscard,lazy_itable_init=0",
		"-d", st.dir,
		dst, strconv.FormatInt(mib, 10)+"M",
	)
	cmd.Env = env
	if err := runQuiet(cmd); err != nil {
		return err
	}

	var script strings.Builder
	fmt.Fprintf(&script, "set_inode_field / ctime @%d\nset_inode_field / atime @%d\n", epoch, epoch)
	asRoot := geteuid() == 0
	for _, p := range paths {
		t, ok := st.times[p]
		if !ok {
			t = epoch
		}
		q := debugfsQuote("/" + p)
		// mkfs.ext4 -d reading a file may have updated its atime.
		fmt.Fprintf(&script, "set_inode_field %s ctime @%d\nset_inode_field %s atime @%d\n", q, t, q, t)
		if !asRoot {
			o := st.owners[p]
			fmt.Fprintf(&script, "set_inode_field %s uid %d\nset_inode_field %s gid %d\n", q, o.uid, q, o.gid)
		}
	}
	cmdFile := filepath.Join(work, "debugfs.cmd")
	if err := os.WriteFile(cmdFile, []byte(script.String()), 0o600); err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}
	fix := exec.CommandContext(ctx, tools.debugfs, "-w", "-f", cmdFile, dst)
	fix.Env = env
	return runQuiet(fix)
}

// debugfsQuote quotes a path for a debugfs command file, which splits on
// blanks and understands double quotes.
func debugfsQuote(p string) string {
	if !strings.ContainsAny(p, " \t\"\\") {
		return p
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`
}
