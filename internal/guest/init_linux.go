package guest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// guestInit holds what only PID 1 inside a guest may do: reap orphans and
// power the machine off. It is created in exactly one place, Run, and only
// when os.Getpid() == 1.
type guestInit struct {
	log    *slog.Logger
	reaper *reaper
}

// initialPIDNamespace is PROC_PID_INIT_INO, the inode of the kernel's
// initial PID namespace as seen in /proc/self/ns/pid.
const initialPIDNamespace = "pid:[4026531836]"

// inInitialPIDNamespace reports whether this process lives in the kernel's
// initial PID namespace, with the namespace it read. A kernel built without
// PID namespaces (CONFIG_PID_NS off, as petty's minimal microVM kernel) has
// only that one: there /proc is mounted but /proc/self/ns/pid does not
// exist. (No PID namespace can be created on such a kernel, so PID 1 there
// is the machine's own init.)
func inInitialPIDNamespace() (string, bool) {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if errors.Is(err, fs.ErrNotExist) && mounted("/proc") {
		return "(kernel without PID namespaces)", true
	}
	return ns, err == nil && ns == initialPIDNamespace
}

// becomeGuestInit mounts the pseudo file systems a minimal guest lacks and
// starts the orphan reaper. Callers must have checked os.Getpid() == 1.
func becomeGuestInit(log *slog.Logger) *guestInit {
	mountEssentials(log)
	if _, ok := inInitialPIDNamespace(); ok {
		// Ctrl-Alt-Del (Firecracker's SendCtrlAltDel) then sends SIGINT to
		// PID 1 instead of restarting at once: Run syncs the disks first.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
			log.Warn("ctrl-alt-del off", "err", err)
		}
		upLoopback(log)
	}
	return &guestInit{log: log, reaper: startReaper()}
}

type mountSpec struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var essentialMounts = []mountSpec{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
}

// mountEssentials mounts each essential file system that is not mounted yet.
// Failures are logged, not fatal: the agent is still useful without /sys.
func mountEssentials(log *slog.Logger) {
	devMounted := false
	mps := mountPoints()
	for _, m := range essentialMounts {
		if mps[m.target] {
			continue
		}
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			log.Warn("mkdir mount point", "target", m.target, "err", err)
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			log.Warn("mount", "target", m.target, "fstype", m.fstype, "err", err)
		} else if m.target == "/dev" {
			devMounted = true
		}
	}
	if devMounted { // never in a /dev that was there before
		linkDevFD("/dev", log)
	}
}

// mounted reports whether target is a mount point according to
// /proc/self/mountinfo. Without /proc only /proc itself can be checked.
func mounted(target string) bool {
	return mountPoints()[target]
}

// mountPoints returns the mount points /proc/self/mountinfo lists (none
// without /proc): read once for a series of checks, since under TCG the
// kernel takes a while to format the file.
func mountPoints() map[string]bool {
	mps := map[string]bool{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mps
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint ...
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			mps[fields[4]] = true
		}
	}
	return mps
}

// errNotGuest is returned by powerOff when PID 1 is not the kernel's init
// (for example a test inside unshare --pid): the caller just exits.
var errNotGuest = errors.New("agent: not the init of the initial PID namespace, not calling reboot(2)")

// powerOff syncs file systems and powers off or restarts the guest. As a
// second guard it refuses unless this process is PID 1 of the initial PID
// namespace. On success it does not return.
func (g *guestInit) powerOff(reboot bool) error {
	unix.Sync()
	if os.Getpid() != 1 {
		return errNotGuest
	}
	if ns, ok := inInitialPIDNamespace(); !ok {
		return fmt.Errorf("%w (pid namespace %q)", errNotGuest, ns)
	}
	releaseFilesystems(g.log)
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	g.log.Info("powering off", "reboot", reboot)
	return unix.Reboot(cmd)
}
