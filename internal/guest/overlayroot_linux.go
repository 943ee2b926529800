package guest

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The overlay root (petty.root= with petty.scratch=): the image's base file
// system, read-only and shared by every VM, is the lower layer; the VM's own
// scratch disk (ext4, formatted by the host) holds the upper and work
// directories. Mount points live in the initramfs, which stays in memory
// behind the new root.
const (
	overlayLower   = "/.petty/lower"   // the base, read-only
	overlayScratch = "/.petty/scratch" // the scratch disk
	overlayNewRoot = "/.petty/root"    // the overlay, moved to / at the end
	overlayUpper   = overlayScratch + "/upper"
	overlayWork    = overlayScratch + "/work"
	// rootFSType is the file system of the base and the scratch disk.
	rootFSType = "ext4"
	// deviceWait bounds the wait for the block devices' nodes to appear
	// once their driver is loaded.
	deviceWait = 2 * time.Second
)

// movedMounts are the initramfs's mounts that follow the agent into the new
// root, in this order (/dev carries /dev/pts along).
var movedMounts = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// errNoDevice is returned when a block device's node did not appear.
var errNoDevice = errors.New("agent: block device did not appear")

// switchToOverlayRoot mounts root read-only as the lower layer and scratch
// as the upper one, makes their overlay the root of the file system (MS_MOVE
// onto / and chroot, as switch_root does) with /dev, /proc, /sys, /run and
// /tmp moved into it, and leaves the agent in it, still PID 1. The kernel
// modules must be loaded already. On error the agent is still in the
// initramfs, with what was mounted left as it is.
func switchToOverlayRoot(root, scratch string, log *slog.Logger) error {
	start := time.Now()
	for _, dev := range []string{root, scratch} {
		if err := waitForDevice(dev, deviceWait); err != nil {
			return err
		}
	}
	for _, d := range []string{overlayLower, overlayScratch, overlayNewRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: overlay root: %w", err)
		}
	}
	// The two mounts wait on the disks: overlap them.
	baseErr := make(chan error, 1)
	go func() {
		if err := unix.Mount(root, overlayLower, rootFSType, unix.MS_RDONLY, ""); err != nil {
			baseErr <- fmt.Errorf("agent: mount the base %s read-only: %w", root, err)
		}
		close(baseErr)
	}()
	// noinit_itable: the host formats the scratch disk with lazy inode
	// tables (a sparse file reads as zeros); without it the kernel zeroes
	// them in the background, competing with the guest's work.
	scratchErr := unix.Mount(scratch, overlayScratch, rootFSType, unix.MS_NOATIME, "noinit_itable")
	if err := <-baseErr; err != nil {
		return err
	}
	if scratchErr != nil {
		return fmt.Errorf("agent: mount the scratch disk %s: %w", scratch, scratchErr)
	}
	for _, d := range []string{overlayUpper, overlayWork} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: overlay root: %w", err)
		}
	}
	opts := "lowerdir=" + overlayLower + ",upperdir=" + overlayUpper + ",workdir=" + overlayWork
	// volatile (Linux 5.10+): the layer dies with the VM, so fsync and
	// syncfs need not reach the scratch disk (pip, npm and git sync a lot).
	err := unix.Mount("overlay", overlayNewRoot, "overlay", 0, opts+",volatile")
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("overlay", overlayNewRoot, "overlay", 0, opts)
	}
	if err != nil {
		return fmt.Errorf("agent: mount the overlay root (%s): %w", opts, err)
	}
	mps := mountPoints()
	for _, m := range movedMounts {
		if !mps[m] {
			continue
		}
		target := filepath.Join(overlayNewRoot, m)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("agent: overlay root: %w", err)
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("agent: move %s into the new root: %w", m, err)
		}
	}
	// The initramfs's files are deleted later, through this descriptor
	// (see freeInitramfs).
	oldRoot, err := os.Open("/")
	if err != nil {
		return fmt.Errorf("agent: overlay root: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(oldRoot.Fd()), &st); err != nil {
		oldRoot.Close()
		return fmt.Errorf("agent: overlay root: %w", err)
	}
	if err := switchRoot(overlayNewRoot); err != nil {
		oldRoot.Close()
		return err
	}
	keepInitramfs(oldRoot, st.Dev)
	log.Debug("overlay root", "base", root, "scratch", scratch, "took", time.Since(start))
	return nil
}

// switchRoot makes newRoot, a mount point, the root: moved onto / and
// chrooted into, like switch_root(8) (the initramfs's rootfs cannot be
// pivot_root'ed away).
func switchRoot(newRoot string) error {
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("agent: switch root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("agent: switch root: move %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("agent: switch root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("agent: switch root: %w", err)
	}
	return nil
}

// waitForDevice waits up to d for the device node dev to exist (devtmpfs
// creates it when the driver has probed the disk).
func waitForDevice(dev string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s within %v", errNoDevice, dev, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setHostname sets the guest's host name (petty.hostname=, default
// DefaultHostname).
func setHostname(name string, log *slog.Logger) {
	if err := unix.Sethostname([]byte(name)); err != nil {
		log.Warn("set host name", "name", name, "err", err)
	}
}

// hostsPath is the hosts file that resolves the guest's own name.
const hostsPath = "/etc/hosts"

// addHostsEntry makes name resolve in the overlay root as Debian does
// ("127.0.1.1 NAME"), appending the line to hostsPath (in the VM's own
// layer) unless a line already names it: tools that look up their host's
// name (hostname -f, sudo, Python's socket.getfqdn) then need no DNS.
func addHostsEntry(path, name string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && !strings.HasPrefix(f[0], "#") && slices.Contains(f[1:], name) {
			return nil
		}
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	if len(b) == 0 {
		b = []byte("127.0.0.1\tlocalhost\n")
	}
	b = append(b, "127.0.1.1\t"+name+"\n"...)
	return os.WriteFile(path, b, 0o644)
}

// resolvConfPath is the resolver configuration petty.dns= fills in.
const resolvConfPath = "/etc/resolv.conf"

// writeResolvConf writes path (in the VM's own layer) naming the name
// servers of dns, comma-separated addresses (petty.dns=, the host's name
// servers when the VM has a network), unless the image has its own file
// there (a symbolic link counts). Entries that are not IP addresses are
// left out; none left writes nothing.
func writeResolvConf(path, dns string) error {
	if _, err := os.Lstat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var b strings.Builder
	for _, a := range strings.Split(dns, ",") {
		if ip := net.ParseIP(a); ip != nil {
			b.WriteString("nameserver " + ip.String() + "\n")
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return os.WriteFile(path, []byte("# petty: the host's name servers (petty.dns=)\n"+b.String()), 0o644)
}
