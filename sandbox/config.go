package sandbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/pettyvm/petty/vm"
)

// Defaults of the Config fields left zero.
const (
	DefaultMaxSandboxes   = 16
	DefaultMemoryShare    = 0.5
	DefaultTimeout        = 10 * time.Minute
	DefaultBootTimeout    = 60 * time.Second
	DefaultStopTimeout    = 10 * time.Second
	DefaultImageName      = "default"
	defaultProcessBuffers = 1 << 20
)

// Image is what a sandbox boots: a kernel, an optional initramfs, and
// either a read-only Base shared by every sandbox (each gets a fresh
// scratch disk of ScratchBytes as its writable layer, the guest's init
// stacking them with overlayfs: see image.NewScratchDisk) or a RootFS image
// copied for each sandbox. Sandboxes never share a writable disk.
type Image struct {
	Kernel string
	Initrd string
	RootFS string
	// Base is an image's root file system, opened read-only by every
	// sandbox's VMM; the Config's VM template carries the boot arguments
	// that tell the guest to stack it below the scratch disk.
	Base string
	// ScratchBytes is the size of each sandbox's scratch disk when Base is
	// set (sparse: it costs what the sandbox writes).
	ScratchBytes int64
}

// Resolver returns the Image called name ("" means the default image).
type Resolver func(ctx context.Context, name string) (Image, error)

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	// MaxSandboxes is the most sandboxes alive (or being created) at once.
	// Default: DefaultMaxSandboxes.
	MaxSandboxes int
	// MemoryShare is the share of the host's memory (0 < s ≤ 1) that the
	// sandboxes' memory may add up to. Default: DefaultMemoryShare.
	MemoryShare float64
	// HostMemoryMiB overrides the host memory read from the kernel (tests).
	HostMemoryMiB int
	// DefaultTimeout is a sandbox's lifetime when Options.Timeout is zero.
	// Default: DefaultTimeout.
	DefaultTimeout time.Duration
	// MaxTimeout, if positive, bounds Options.Timeout and SetTimeout.
	MaxTimeout time.Duration
	// Images resolves Options.Image. Required.
	Images Resolver
	// VM is the template of every sandbox's vm.Config: VMM, binaries, run
	// directory, vsock, default memory and vCPUs. Its Kernel, Initrd and
	// RootDrive are replaced by the image's.
	VM vm.Config
	// BootTimeout bounds a sandbox's boot up to its agent's first answer.
	// Default: DefaultBootTimeout.
	BootTimeout time.Duration
	// StopTimeout bounds the graceful stop of a sandbox being destroyed
	// (it is then killed). Default: DefaultStopTimeout.
	StopTimeout time.Duration
	// WorkDir holds per-sandbox copies of root file systems. Default:
	// os.TempDir().
	WorkDir string
	// Snapshots makes sandboxes start from a template snapshot of their
	// image instead of a cold boot: the first sandbox of an image and size
	// boots a VM, snapshots it once its agent answers and restores that
	// snapshot; later ones restore it (see Manager.Create). The template is
	// kept per image identity (its files' size, time and inode) and VM
	// settings, so a changed image file or another size makes another.
	// Where snapshots cannot be made or restored, sandboxes boot cold and
	// the reason is logged.
	Snapshots bool
	// StateDir keeps the template snapshots (in templates/, 0700) across
	// Managers. Default: a private directory under WorkDir, removed by
	// Close.
	StateDir string
	// Pool is the number of sandboxes kept ready (booted or restored, agent
	// answering) per pooled image at the default size; Create hands one out
	// when the image and size match (an acquire) and the pool refills in
	// the background. Pooled VMs count against the memory limit (never
	// against MaxSandboxes) and are evicted to admit a sandbox that would
	// not fit; they are not listed. 0: no pool.
	Pool int
	// PoolImages names the pooled images. Default: the default image ("").
	PoolImages []string
	// PoolFillers bounds the pooled VMs being made at once. Default:
	// DefaultPoolFillers.
	PoolFillers int
	// OnTemplate, if set, is called after each template snapshot is made
	// (or fails to be), with its image's name and duration (metrics).
	OnTemplate func(image string, d time.Duration, err error)
	// OnCreate, if set, is called after each Create with its duration and
	// error (metrics).
	OnCreate func(d time.Duration, err error)
	// OnExec, if set, is called after each command with its duration
	// (metrics).
	OnExec func(time.Duration)
	// Logger receives the Manager's logs. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxSandboxes <= 0 {
		c.MaxSandboxes = DefaultMaxSandboxes
	}
	if c.MemoryShare <= 0 || c.MemoryShare > 1 {
		c.MemoryShare = DefaultMemoryShare
	}
	if c.DefaultTimeout <= 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.BootTimeout <= 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.PoolFillers <= 0 {
		c.PoolFillers = DefaultPoolFillers
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Options describe a sandbox to create. Zero values mean defaults.
type Options struct {
	// Image names the image (see Config.Images); "" is the default.
	Image string
	// Timeout is the sandbox's lifetime; expiry destroys it. Default:
	// Config.DefaultTimeout.
	Timeout time.Duration
	// Labels tag the sandbox, for Manager.List.
	Labels map[string]string
	// MemoryMiB and VCPUs size the VM. Default: the template's (vm's
	// defaults when the template has none).
	MemoryMiB int
	VCPUs     int
	// Env ("KEY=value") is added to the environment of every command.
	Env []string
	// Progress, if set, is told of each step of the creation.
	Progress func(step string)
}
