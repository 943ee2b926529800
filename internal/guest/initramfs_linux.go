package guest

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The initramfs layout BootInitramfs relies on (see package image).
const (
	// InitramfsInitPath is the path the kernel runs the initramfs's init
	// from, and so its argv[0].
	InitramfsInitPath = "/init"
	// initramfsScript is the shell /init that switches to a root= disk,
	// run by initramfsShell.
	initramfsScript = "/init.sh"
	initramfsShell  = "/bin/busybox"
)

// DefaultHostname is the guest's host name when the kernel command line
// has no petty.hostname=.
const DefaultHostname = "petty"

// InitramfsInitProtocol is contained in every agent executable that can be
// an initramfs's /init (see BootInitramfs). Package image makes /init the
// agent itself only when the agent executable contains this string, and
// otherwise keeps the shell /init.
const InitramfsInitProtocol = "petty-agent-initramfs-init/1"

// portLinkWait bounds how long BootInitramfs waits for virtio-serial ports
// to appear and be named.
const portLinkWait = time.Second

// ErrNotInitramfsInit is returned by BootInitramfs when the process is not
// PID 1 of the initial PID namespace, that is, not a guest's init.
var ErrNotInitramfsInit = errors.New("agent: not the guest's init (PID 1 of the initial PID namespace)")

// IsInitramfsInit reports whether this process was started by the kernel as
// the initramfs's init: it is PID 1 and its argv[0] is "/init". (The kernel
// gives /init no arguments; the agent's settings come from the kernel
// command line.)
func IsInitramfsInit() bool {
	return os.Getpid() == 1 && len(os.Args) > 0 && os.Args[0] == InitramfsInitPath
}

// BootInitramfs does the initramfs /init's job in place of a shell script
// and returns the --listen URI to serve on (petty.listen=, default
// DefaultListen). It refuses with ErrNotInitramfsInit unless the process is
// PID 1 of the initial PID namespace, before doing anything but mounting
// /proc to check that.
//
// With petty.scratch=DEV and a root (petty.root= or root=) it boots the
// overlay root (see switchToOverlayRoot) once the modules are loaded, and
// fails when it cannot.
// Otherwise, with root=/dev/... or petty.root=... it execs
// "/bin/busybox sh /init.sh", which mounts that root and switch_roots into
// it, and returns only if that exec fails (then it goes on as without a
// root). Otherwise it mounts /proc, /sys, /dev and the other essential file
// systems, loads the kernel modules /etc/petty/modules.load lists that the
// machine's devices need, with finit_module(2), and links the named
// virtio-serial ports as /dev/virtio-ports/NAME.
func BootInitramfs(log *slog.Logger) (listen string, err error) {
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	if os.Getpid() != 1 {
		return "", ErrNotInitramfsInit
	}
	mountedProc, err := checkInitialPIDNamespace()
	if err != nil {
		return "", err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		log.Warn("read kernel command line", "err", err)
	}
	p := parseBootCmdline(string(cmdline))
	if p.root != "" && p.scratch == "" {
		if mountedProc {
			_ = unix.Unmount("/proc", 0) // init.sh mounts it again
		}
		err := unix.Exec(initramfsShell, []string{"sh", initramfsScript}, os.Environ())
		log.Error("cannot run the switch_root script; running the agent from the initramfs", "script", initramfsScript, "root", p.root, "err", err)
	}
	mountEssentials(log)
	loaded := 0
	if f, err := os.Open(modulesLoadPath); err != nil {
		log.Warn("no module list", "err", err)
	} else {
		mods, err := parseModulesLoad(f)
		f.Close()
		if err != nil {
			log.Warn("module list", "err", err)
		}
		loaded = len(loadListedModules(mods, os.DirFS("/sys"), finitModuleLoader{}, log))
	}
	linkVirtioPorts("/sys", "/dev", portLinkWait)
	if p.root != "" && p.scratch != "" {
		// No fallback: commands would run in the initramfs instead of the
		// image, and fail in confusing ways. The error on the console
		// ends the boot (the host reports the console's tail).
		if err := switchToOverlayRoot(p.root, p.scratch, log); err != nil {
			return "", err
		}
		if err := addHostsEntry(hostsPath, p.hostname); err != nil {
			log.Warn("add the host name to /etc/hosts", "err", err)
		}
		if p.dns != "" {
			if err := writeResolvConf(resolvConfPath, p.dns); err != nil {
				log.Warn("write /etc/resolv.conf", "err", err)
			}
		}
	}
	setHostname(p.hostname, log)
	log.Debug("initramfs init done", "protocol", InitramfsInitProtocol, "modules", loaded, "listen", p.listen, "took", time.Since(start))
	return p.listen, nil
}

// checkInitialPIDNamespace returns nil when this process is in the kernel's
// initial PID namespace, mounting /proc first when it is not mounted (as at
// a guest's boot); mountedProc says whether it did.
func checkInitialPIDNamespace() (mountedProc bool, err error) {
	if !mounted("/proc") {
		m := essentialMounts[0]
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return false, fmt.Errorf("agent: mount /proc: %w", err)
		}
		mountedProc = true
	}
	if got, ok := inInitialPIDNamespace(); !ok {
		return mountedProc, fmt.Errorf("%w (pid namespace %q)", ErrNotInitramfsInit, got)
	}
	return mountedProc, nil
}

// bootParams are the kernel command line parameters the initramfs's init
// reads.
type bootParams struct {
	listen string // petty.listen=, default DefaultListen
	root   string // petty.root=, or root=/dev/...; "" for none
	// scratch is petty.scratch=, the VM's writable disk: with it root is
	// the read-only base of an overlay root.
	scratch string
	// hostname is petty.hostname=, default DefaultHostname.
	hostname string
	// dns is petty.dns=, comma-separated name server addresses for an
	// overlay root without /etc/resolv.conf; "" for none.
	dns string
}

// parseBootCmdline reads /proc/cmdline's contents the way /init.sh does:
// the last petty.listen= wins; petty.root= wins over root=, which counts
// only for a /dev/ path, the first one.
func parseBootCmdline(cmdline string) bootParams {
	p := bootParams{listen: DefaultListen, hostname: DefaultHostname}
	for _, arg := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(arg, "petty.listen="); ok && v != "" {
			p.listen = v
		} else if v, ok := strings.CutPrefix(arg, "petty.root="); ok {
			p.root = v
		} else if v, ok := strings.CutPrefix(arg, "petty.scratch="); ok {
			p.scratch = v
		} else if v, ok := strings.CutPrefix(arg, "petty.hostname="); ok && v != "" {
			p.hostname = v
		} else if v, ok := strings.CutPrefix(arg, "petty.dns="); ok {
			p.dns = v
		} else if v, ok := strings.CutPrefix(arg, "root="); ok && strings.HasPrefix(v, "/dev/") && p.root == "" {
			p.root = v
		}
	}
	return p
}

// GuestListen returns the kernel command line's petty.listen= (default
// DefaultListen), for an agent that is PID 1 of a guest without being the
// initramfs's /init: the /sbin/init of a root file system the kernel mounted
// itself. It sets the host name (petty.hostname=, default DefaultHostname).
// It mounts /proc when it must, and refuses (ErrNotInitramfsInit)
// unless this process is PID 1 of the kernel's initial PID namespace.
func GuestListen() (string, error) {
	if os.Getpid() != 1 {
		return "", ErrNotInitramfsInit
	}
	if _, err := checkInitialPIDNamespace(); err != nil {
		return "", err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", err
	}
	p := parseBootCmdline(string(cmdline))
	setHostname(p.hostname, slog.Default())
	return p.listen, nil
}
