package guest

import (
	"log/slog"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// After the switch to the overlay root the initramfs's files (busybox, the
// kernel modules, already loaded) would stay in memory for the VM's
// lifetime. switch_root(8) deletes them before switching; the agent keeps a
// descriptor of the old root instead and deletes them once it has answered
// its first call, off the path to agent-ready (under TCG the deletion costs
// tens of milliseconds).
var oldInitramfs struct {
	mu   sync.Mutex
	root *os.File // the initramfs's root directory; nil when none is left
	dev  uint64   // its device: nothing on another is touched
}

// keepInitramfs records root, the initramfs's open root directory on
// device dev, for freeInitramfs.
func keepInitramfs(root *os.File, dev uint64) {
	oldInitramfs.mu.Lock()
	defer oldInitramfs.mu.Unlock()
	if oldInitramfs.root != nil {
		oldInitramfs.root.Close()
	}
	oldInitramfs.root, oldInitramfs.dev = root, dev
}

// freeInitramfs deletes the files of the initramfs that keepInitramfs
// recorded, if any, and reports whether there was one.
func freeInitramfs(log *slog.Logger) bool {
	oldInitramfs.mu.Lock()
	root, dev := oldInitramfs.root, oldInitramfs.dev
	oldInitramfs.root = nil
	oldInitramfs.mu.Unlock()
	if root == nil {
		return false
	}
	defer root.Close()
	freed := removeOnDeviceAt(root, dev)
	log.Debug("freed the initramfs", "bytes", freed)
	return true
}

// removeOnDevice removes what is below dir on device dev, never crossing
// into another file system, best effort, and returns the bytes of the
// regular files removed.
func removeOnDevice(dir string, dev uint64) int64 {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	return removeOnDeviceAt(f, dev)
}

// removeOnDeviceAt is removeOnDevice for an open directory, which need not
// be reachable by any path (the initramfs after the switch of root): every
// step is relative to a directory descriptor, and no symbolic link is
// followed.
func removeOnDeviceAt(dir *os.File, dev uint64) (freed int64) {
	ents, err := dir.ReadDir(-1)
	if err != nil {
		return 0
	}
	dfd := int(dir.Fd())
	for _, e := range ents {
		name := e.Name()
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Dev != dev {
			continue // gone, or a mount point
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			sub := os.NewFile(uintptr(fd), name)
			freed += removeOnDeviceAt(sub, dev)
			sub.Close()
			_ = unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR) // one still holding a mount point stays
		case unix.S_IFREG:
			if unix.Unlinkat(dfd, name, 0) == nil {
				freed += st.Size
			}
		default:
			_ = unix.Unlinkat(dfd, name, 0)
		}
	}
	return freed
}
