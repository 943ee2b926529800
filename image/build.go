package image

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// ErrNoAgent is returned when Options.AgentPath is empty.
var ErrNoAgent = errors.New("image: Options.AgentPath is required")

// Options says what to build the image from. The zero value of every field
// but AgentPath picks the Debian default described on the field.
type Options struct {
	// KernelPath is a bzImage such as /boot/vmlinuz-*; default the newest
	// /boot/vmlinuz-*-cloud-amd64 (package linux-image-cloud-amd64).
	KernelPath string
	// ModulesDir holds the kernel's modules.dep; default
	// /lib/modules/<release of KernelPath>.
	ModulesDir string
	// BusyboxPath is a static busybox; default /bin/busybox (package
	// busybox-static).
	BusyboxPath string
	// AgentPath is the static petty-agent binary. Required.
	AgentPath string
	// CacheDir holds built images; default $XDG_CACHE_HOME/petty or
	// ~/.cache/petty.
	CacheDir string
	// RootFS also builds the small default ext4 root file system (needs
	// mkfs.ext4 from package e2fsprogs).
	RootFS bool
	// RootFSSizeMiB is the root file system's size; default 64.
	RootFSSizeMiB int
	// KernelSource boots a minimal microVM kernel compiled from a Debian
	// kernel source tarball instead of a host kernel: `make tinyconfig`,
	// the embedded fragment microvm.config merged over it (virtio-mmio
	// with command-line devices as Firecracker needs, virtio-pci, vsock,
	// ext4 and serial built in; no modules), `make olddefconfig`, then
	// `make vmlinux` (≈9 min on 2 cores). The kernel is cached under
	// CacheDir, so later Builds reuse it; the initramfs then holds no
	// modules. Needs packages linux-source-6.1 build-essential bc bison
	// flex libelf-dev. Excludes KernelPath and ModulesDir. Its Progress
	// steps start with "kernel from source: ".
	//
	// The cache key is the tarball's path, size and modification time, the
	// fragment and the build's format version: finding a cached kernel
	// reads no tarball and runs no tool.
	KernelSource bool
	// NoCompile makes KernelSource use only a kernel already compiled into
	// the cache: when there is none, Build fails at once with
	// ErrKernelNotCompiled instead of compiling for minutes.
	NoCompile bool
	// KernelSourceTarball is the kernel source for KernelSource; default
	// /usr/src/linux-source-6.1.tar.xz (package linux-source-6.1).
	KernelSourceTarball string
	// Progress, if not nil, is called once at the start of each step
	// ("resolve inputs", "extract kernel", "initramfs", "rootfs", "store",
	// or "cached" on a cache hit).
	Progress func(step string)
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger

	// rootModules adds rootModules to the initramfs (Store.Build of an
	// image with a root file system).
	rootModules bool
}

// Image is a built guest image: paths inside the cache directory. The
// files are shared by every user of the cache: treat them as read-only
// (boot the root file system from a copy or with snapshot/read-only
// drives).
type Image struct {
	// Kernel is the uncompressed ELF vmlinux.
	Kernel string
	// Initrd is the initramfs, an uncompressed cpio newc archive.
	Initrd string
	// RootFS is the ext4 root file system, "" unless Options.RootFS.
	RootFS string
	// Key is the hex SHA-256 content key naming the cache entry.
	Key string
	// Cached reports that the image was already in the cache.
	Cached bool
}

// Cache entry file names.
const (
	vmlinuxName = "vmlinux"
	initrdName  = "initrd.img"
	rootfsName  = "rootfs.ext4"
)

// defaultRootFSSizeMiB is the root file system size when none is given.
const defaultRootFSSizeMiB = 64

// Build builds the guest image described by opts, or finds it in the
// cache. Building the same inputs twice gives byte-identical files. A
// missing host package is reported as a *MissingError naming it.
func Build(ctx context.Context, opts Options) (*Image, error) {
	o := opts // never mutate the caller's options
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	progress := func(step string) {
		o.Logger.Debug("image: step", "step", step)
		if o.Progress != nil {
			o.Progress(step)
		}
	}

	progress("resolve inputs")
	if o.KernelSource {
		var err error
		if o.KernelPath, err = sourceKernel(ctx, &o, progress); err != nil {
			return nil, err
		}
	}
	in, err := resolveInputs(&o)
	if err != nil {
		return nil, err
	}
	key := in.key()
	dir := filepath.Join(o.CacheDir, key)
	img := &Image{Kernel: filepath.Join(dir, vmlinuxName), Initrd: filepath.Join(dir, initrdName), Key: key}
	if o.RootFS {
		img.RootFS = filepath.Join(dir, rootfsName)
	}
	if cacheComplete(img) {
		progress("cached")
		o.Logger.Debug("image: cache hit", "dir", dir)
		img.Cached = true
		return img, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("image: cache dir: %w", err)
	}
	tmp, err := os.MkdirTemp(o.CacheDir, ".build-"+key[:16]+"-")
	if err != nil {
		return nil, fmt.Errorf("image: cache dir: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up any failure

	progress("extract kernel")
	vmlinux, err := kernelELF(o.KernelSource, in.kernel)
	if err != nil {
		return nil, fmt.Errorf("image: %s: %w", in.kernelPath, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, vmlinuxName), vmlinux, 0o644); err != nil {
		return nil, fmt.Errorf("image: write vmlinux: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	progress("initramfs")
	if err := writeInitramfs(filepath.Join(tmp, initrdName), in); err != nil {
		return nil, err
	}

	if o.RootFS {
		progress("rootfs")
		if err := buildRootFS(ctx, filepath.Join(tmp, rootfsName), in); err != nil {
			return nil, err
		}
	}

	progress("store")
	if err := storeEntry(tmp, dir, img); err != nil {
		return nil, err
	}
	o.Logger.Debug("image: built", "dir", dir)
	return img, nil
}
