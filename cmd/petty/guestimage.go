package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// agentBinary is the guest agent's executable name.
const agentBinary = "petty-agent"

// errNoAgent reports that petty-agent was found neither next to petty nor
// in $PATH.
var errNoAgent = errors.New(agentBinary + " not found")

// findAgent returns petty-agent next to the petty executable, else in $PATH.
func findAgent() (string, error) {
	var next string
	if exe, err := os.Executable(); err == nil {
		next = filepath.Join(filepath.Dir(exe), agentBinary)
		if fi, err := os.Stat(next); err == nil && fi.Mode().IsRegular() {
			return next, nil
		}
	}
	if p, err := exec.LookPath(agentBinary); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w next to petty nor in $PATH; build it (static) with:\n  %s", errNoAgent, agentBuildHint(next))
}

// agentBuildHint is the command that builds petty-agent at path (next to
// petty), or into the directory of petty when path is "".
func agentBuildHint(path string) string {
	if path == "" {
		path = "$(dirname $(command -v petty))/" + agentBinary
	}
	return "CGO_ENABLED=0 go build -o " + path + " github.com/pettyvm/petty/cmd/" + agentBinary
}

// guestImage holds the files a VM boots from.
type guestImage struct {
	kernel, initrd string
	rootfs         string // --rootfs: the root drive, read-write
	// base is an image's root file system: the read-only lower layer of
	// the guest's overlay root, with a per-VM scratch disk above it.
	base string
}

// buildDefaultImage builds (or finds in the cache) petty's default guest
// image: kernel and initramfs with petty-agent as init, plus the ext4 root
// file system when withRootFS.
func buildDefaultImage(ctx context.Context, opts image.Options, prog *progress, log *slog.Logger) (*image.Image, error) {
	if opts.AgentPath == "" {
		p, err := findAgent()
		if err != nil {
			return nil, err
		}
		opts.AgentPath = p
	}
	opts.Logger = log
	opts.Progress = func(step string) { prog.step("building guest image: %s", step) }
	img, err := image.Build(ctx, opts)
	prog.done()
	if err != nil {
		return nil, fmt.Errorf("building the default guest image: %w", err)
	}
	return img, nil
}

// kernelSourceBuildCommand is the command that compiles the Firecracker
// guest kernel into the image cache.
const kernelSourceBuildCommand = "petty image build --kernel-source"

// errKernelNotBuilt reports that a run needs the kernel compiled from
// source and it is not in the cache: petty run never compiles it.
var errKernelNotBuilt = errors.New("the Firecracker guest kernel is not built")

// resolveImage returns the kernel, initrd and rootfs of the run: the flags
// when --kernel is given, else the image --image names: a directory
// holding manifest.json when it contains a slash, minimalImage, or an
// image of the store (the default one built on first use).
func (f *vmFlags) resolveImage(ctx context.Context, vmm vm.VMM, prog *progress, log *slog.Logger) (guestImage, error) {
	name := f.image
	switch {
	case f.kernel != "":
		return guestImage{kernel: f.kernel, initrd: f.initrd, rootfs: f.rootfs}, nil
	case name == "":
		name = image.DefaultImage
	case isImagePath(name):
		return imageFromDir(name)
	}
	if name == image.MinimalImage {
		return minimalImage(ctx, vmm, prog, log)
	}
	return storeImage(ctx, name, prog, log)
}

// minimalImage returns the busybox initramfs image (--image minimal),
// built or found in the image cache by content key as before images had
// names. Under Firecracker that image's kernel is the minimal one compiled
// from Debian's linux-source (image.Options.KernelSource): Firecracker
// announces its devices on the kernel command line, which Debian's
// packaged kernels do not read. A run only takes it from the cache
// (image.Options.NoCompile): when it is not there, it fails at once with
// errKernelNotBuilt naming the command that compiles it.
func minimalImage(ctx context.Context, vmm vm.VMM, prog *progress, log *slog.Logger) (guestImage, error) {
	fromSource := vmm == vm.Firecracker
	img, err := buildDefaultImage(ctx, image.Options{KernelSource: fromSource, NoCompile: fromSource}, prog, log)
	if errors.Is(err, image.ErrKernelNotCompiled) {
		return guestImage{}, fmt.Errorf("%w: compile it once (≈9 min on 2 cores) with `%s`, or pass --kernel: %w", errKernelNotBuilt, kernelSourceBuildCommand, err)
	}
	if err != nil {
		return guestImage{}, err
	}
	return guestImage{kernel: img.Kernel, initrd: img.Initrd}, nil
}
