package guest

import (
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// Containers.
//
// An ExecStart with root runs its command chrooted in that directory of the
// guest (a container's root file system that the host shared with the
// guest and mounted there); with new_namespaces the command also gets new
// mount and PID namespaces, so it is PID 1 of its own PID namespace and its
// mounts stay its own. Paths of the command (args[0] looked up in PATH, the
// working directory) are inside root.

// inRoot returns p, a path inside root, as a path of the agent's file
// system.
func inRoot(root, p string) string {
	if root == "" {
		return p
	}
	return filepath.Join(root, filepath.Clean("/"+p))
}

// applyContainer sets the chroot and namespace attributes of start on attr.
func applyContainer(start *agentpb.ExecStart, attr *syscall.SysProcAttr) {
	if start.Root != "" {
		attr.Chroot = start.Root
	}
	if start.NewNamespaces {
		attr.Cloneflags |= unix.CLONE_NEWNS | unix.CLONE_NEWPID
	}
}

// checkRoot validates start.Root: an absolute directory of the guest.
func checkRoot(root string) error {
	if root == "" {
		return nil
	}
	if !filepath.IsAbs(root) {
		return errorf(wire.InvalidArgument, "exec: root %q is not absolute", root)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return errorf(wire.InvalidArgument, "exec: root %q: not a directory (%v)", root, err)
	}
	return nil
}

// executableIn reports whether p, a path inside root, is an executable
// file; under a root also a symbolic link, whose target only the chrooted
// command can resolve.
func executableIn(root, p string) bool {
	p = inRoot(root, p)
	if fi, err := os.Stat(p); err == nil {
		return fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
	}
	if root == "" {
		return false
	}
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}
