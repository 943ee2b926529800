package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/mcpserver"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/vm"
)

// sandboxFlags are the flags of the commands that serve sandboxes (petty
// mcp, petty serve): the VM template (vmFlags) and the Manager's limits.
type sandboxFlags struct {
	vm           vmFlags
	maxSandboxes int
	memoryShare  float64
	timeout      time.Duration
	maxTimeout   time.Duration
	pool         int
	snapshots    bool
}

func (f *sandboxFlags) register(fs *pflag.FlagSet) {
	f.vm.register(fs)
	fs.IntVar(&f.maxSandboxes, "max-sandboxes", sandbox.DefaultMaxSandboxes, "most sandboxes alive at once")
	fs.Float64Var(&f.memoryShare, "memory-share", sandbox.DefaultMemoryShare, "share of the host's memory the sandboxes may use together (0-1]")
	fs.DurationVar(&f.timeout, "sandbox-timeout", sandbox.DefaultTimeout, "a sandbox's lifetime unless create_sandbox gives one")
	fs.DurationVar(&f.maxTimeout, "max-sandbox-timeout", 24*time.Hour, "the longest lifetime a sandbox may be given")
	fs.IntVar(&f.pool, "pool", 0, "sandboxes kept ready (booted, agent answering) for create_sandbox to hand out at once; they hold memory")
	fs.BoolVar(&f.snapshots, "snapshots", true, "start sandboxes by restoring a template snapshot of the image (made once, at agent-ready) instead of a cold boot, where the VMM can")
}

// manager resolves the VMM and the default guest image (the flags' kernel,
// initrd and rootfs, or petty's built-in image) and returns a Manager whose
// sandboxes boot them.
func (a *app) manager(ctx context.Context, f *sandboxFlags, hooks ...func(*sandbox.Config)) (*sandbox.Manager, error) {
	if err := f.vm.check(); err != nil {
		return nil, err
	}
	if f.memoryShare <= 0 || f.memoryShare > 1 {
		return nil, usagef("--memory-share must be in (0, 1], got %v", f.memoryShare)
	}
	if f.maxSandboxes < 1 {
		return nil, usagef("--max-sandboxes must be at least 1")
	}
	if f.pool < 0 {
		return nil, usagef("--pool must not be negative")
	}
	prog := newProgress(a.stderr, a.verbose)
	cfg, _, scratch, err := a.prepare(ctx, &f.vm, prog)
	if err != nil {
		return nil, err
	}
	img := sandbox.Image{Kernel: cfg.Kernel, Initrd: cfg.Initrd, RootFS: cfg.RootDrive.Path}
	if scratch != "" {
		// An image with a base: every sandbox gets a scratch disk of its
		// own (the template's is dropped), above the shared read-only base.
		image.RemoveScratchDisk(scratch)
		size, _ := parseSize(f.vm.diskSize) // checked by f.vm.check
		img = sandbox.Image{Kernel: cfg.Kernel, Initrd: cfg.Initrd, Base: cfg.RootDrive.Path, ScratchBytes: size}
		cfg.RootDrive = vm.Drive{}
		cfg.Drives = slices.DeleteFunc(slices.Clone(cfg.Drives), func(d vm.Drive) bool { return d.ID == image.ScratchDriveID })
	}
	mcfg := sandbox.Config{
		MaxSandboxes:   f.maxSandboxes,
		MemoryShare:    f.memoryShare,
		DefaultTimeout: f.timeout,
		MaxTimeout:     f.maxTimeout,
		Images: func(_ context.Context, name string) (sandbox.Image, error) {
			if name != "" && name != sandbox.DefaultImageName {
				return sandbox.Image{}, fmt.Errorf("unknown image %q: this server has only %q", name, sandbox.DefaultImageName)
			}
			return img, nil
		},
		VM:          cfg,
		BootTimeout: f.vm.bootTimeout,
		StopTimeout: f.vm.stopTimeout,
		Snapshots:   f.snapshots,
		StateDir:    sandboxStateDir(),
		Pool:        f.pool,
		Logger:      a.logger(),
	}
	for _, h := range hooks {
		h(&mcfg)
	}
	return sandbox.NewManager(mcfg)
}

// sandboxStateDir is where the sandbox Manager keeps its template
// snapshots, a cache next to the image store ($XDG_CACHE_HOME/petty/
// sandboxes, else ~/.cache/petty/sandboxes), or "" (a private directory
// for this server only) without a cache directory.
func sandboxStateDir() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "petty", "sandboxes")
}

// closeManager destroys every sandbox of mgr, within 25 s.
func (a *app) closeManager(mgr *sandbox.Manager) error {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := mgr.Close(ctx); err != nil {
		return fmt.Errorf("destroying the sandboxes: %w", err)
	}
	return nil
}

// serveSignals returns a ctx that SIGTERM, SIGINT or SIGHUP cancels, with
// SIGPIPE ignored (a write to a closed stdout must not kill petty before it
// destroys its sandboxes).
func serveSignals() (context.Context, context.CancelFunc) {
	signal.Ignore(syscall.SIGPIPE)
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
}

// mcpServer is the MCP adapter of mgr.
func (a *app) mcpServer(mgr *sandbox.Manager) *mcpserver.Server {
	return mcpserver.New(mgr, mcpserver.Options{Name: "petty", Version: pettyVersion(), Logger: a.logger()})
}
