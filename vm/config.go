package vm

import (
	"io"
	"log/slog"
	"time"
)

// VMM names the virtual machine monitor that runs a Machine.
type VMM string

const (
	// Firecracker runs the VM under Firecracker (the default).
	Firecracker VMM = "firecracker"
	// QEMU runs the VM under qemu-system-x86_64 with the microvm machine type.
	QEMU VMM = "qemu"
)

// Defaults applied by [Config.withDefaults] for zero-valued fields.
const (
	// DefaultVCPUs is the number of vCPUs of a VM whose Config.VCPUs is 0.
	DefaultVCPUs = 2
	// DefaultMemoryMiB is the memory of a VM whose Config.MemoryMiB is 0.
	DefaultMemoryMiB = 256
	// MinMemoryMiB is the smallest memory size Validate accepts.
	MinMemoryMiB = 128
	// MaxVCPUs is the largest vCPU count Validate accepts (Firecracker's limit).
	MaxVCPUs = 32
	// DefaultBootArgs is Firecracker's recommended kernel command line.
	DefaultBootArgs = "console=ttyS0 reboot=k panic=1 pci=off"
	// MaxCmdlineBytes bounds the kernel command line, device additions
	// included. Under QEMU the bound is qemu.MaxConfigCmdline (1012 bytes):
	// the line travels in QEMU's config file, kept off its argv.
	MaxCmdlineBytes = 2048
	// DefaultVsockCID is the guest CID of a Firecracker vsock device whose
	// CID is 0 (QEMU allocates a free CID instead).
	DefaultVsockCID = 3
	// DefaultRootDriveID is the ID of the root drive when RootDrive.ID is empty.
	DefaultRootDriveID = "rootfs"
	// DefaultShutdownTimeout bounds Shutdown when its context has no deadline.
	DefaultShutdownTimeout = 10 * time.Second
	// FirecrackerBinEnv names the environment variable that locates the
	// firecracker binary when Config.FirecrackerBin is empty.
	FirecrackerBinEnv = "PETTY_FIRECRACKER_BIN"
)

// Config describes a VM. Zero values mean the documented defaults; a Config
// is never modified by the functions that take it. Relative paths are
// resolved against the working directory when the Machine is created.
type Config struct {
	// VMM selects the monitor. Default: Firecracker.
	VMM VMM

	// VCPUs is the number of vCPUs, 1 to 32 (1 or even when SMT is set).
	// Default: DefaultVCPUs.
	VCPUs int
	// SMT enables simultaneous multithreading in the guest.
	SMT bool
	// MemoryMiB is the guest memory in MiB, at least MinMemoryMiB and at most
	// the host's memory. Default: DefaultMemoryMiB.
	MemoryMiB int

	// Kernel is the path of the guest kernel (an uncompressed ELF vmlinux).
	// Required.
	Kernel string
	// Initrd is the path of an optional initramfs.
	Initrd string
	// BootArgs is the kernel command line. Default: DefaultBootArgs.
	BootArgs string

	// RootDrive is the root block device. A zero RootDrive (empty Path) means
	// none: the guest runs from its initramfs.
	RootDrive Drive
	// Drives are extra block devices, attached in order after the root drive.
	Drives []Drive

	// Network attaches a virtio-net device to an existing tap. Optional.
	Network *Network
	// Vsock adds a vsock device, the channel of the guest agent. Optional.
	Vsock *Vsock
	// Shares are host directories shared with the guest (virtio-fs, QEMU
	// only; see Share). Optional.
	Shares []Share

	// FirecrackerBin is the firecracker executable. Default: the value of
	// $PETTY_FIRECRACKER_BIN, then "firecracker" looked up in $PATH.
	FirecrackerBin string
	// QEMUBin is the qemu-system-x86_64 executable. Default: looked up in $PATH.
	QEMUBin string
	// Accel is QEMU's accelerator: "auto" (KVM when it can boot guests, TCG
	// otherwise), "kvm" or "tcg". Default: "auto". Firecracker ignores it.
	Accel string

	// RunDir is the root under which each VM gets a private run directory
	// <RunDir>/<ID> (sockets, config), created 0700 by the first Start. The
	// root is created 0700 if missing, and refused unless it is a directory
	// (not a symlink) owned by the effective user with no group or other
	// access. Default: /run/petty for root, $XDG_RUNTIME_DIR/petty (when
	// short) or /tmp/petty-<uid> otherwise.
	RunDir string
	// Console, when set, receives a copy of the VMM's stdout and stderr (the
	// guest's serial console) as it arrives. Its tail is always kept and
	// reported in errors.
	Console io.Writer
	// Logger receives petty's own log records. Default: a logger that drops
	// everything.
	Logger *slog.Logger
}

// Drive is a block device backed by a file on the host.
type Drive struct {
	// ID names the drive: letters, digits and '_', unique within a Config.
	// Default for the root drive: DefaultRootDriveID; extra drives default
	// to "drive<N>" with N their index in Config.Drives.
	ID string
	// Path is the backing file; it must exist and be readable (and writable
	// unless ReadOnly).
	Path string
	// ReadOnly attaches the drive read-only.
	ReadOnly bool
}

// Network is a virtio-net device backed by an existing tap device.
type Network struct {
	// Tap is the name of an existing tap device in the network namespace
	// of the thread that calls New and Start. Required.
	Tap string
	// MAC is the guest's MAC address: six colon-separated hex pairs, unicast
	// (e.g. "06:00:ac:10:00:02"). Default: a random locally administered
	// address, different for every Machine.
	MAC string
}

// Vsock is a virtio-vsock device.
type Vsock struct {
	// CID is the guest's context ID, at least 3 and below 2^32-1. Under
	// Firecracker it is private to the VM; default DefaultVsockCID. Under
	// QEMU (vhost-vsock) it is global to the host: 0, the default, makes
	// Start allocate a free one, and an explicit CID that another VM holds
	// fails Start with ErrCIDInUse.
	CID uint32
	// Path is the host-side unix socket of Firecracker's hybrid vsock.
	// Default: a socket in the VM's run directory.
	Path string
}

// clone returns a deep copy of c.
func (c Config) clone() Config {
	out := c
	out.Drives = append([]Drive(nil), c.Drives...)
	out.Shares = append([]Share(nil), c.Shares...)
	if c.Network != nil {
		n := *c.Network
		out.Network = &n
	}
	if c.Vsock != nil {
		v := *c.Vsock
		out.Vsock = &v
	}
	return out
}

// allDrives returns the root drive (if any) followed by the extra drives.
func (c *Config) allDrives() []Drive {
	var ds []Drive
	if c.RootDrive.Path != "" {
		ds = append(ds, c.RootDrive)
	}
	return append(ds, c.Drives...)
}
