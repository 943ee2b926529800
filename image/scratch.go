package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pettyvm/petty/internal/privdir"
)

// The per-VM writable layer of an image with a root file system.

// petty creates a sparse file of --disk-size in the run root, formats it
// ext4 on the host (no journal: the layer dies with the VM; lazy inode
// tables: mkfs writes a few MiB whatever the size) and attaches it as the
// VM's second drive (/dev/vdb), after the image's base (/dev/vda, opened
// read-only by the VMM). The guest's init stacks them with overlayfs.
//
// The file is unlinked as soon as the guest's agent answered (the VMM holds
// it open; its blocks are freed when the VMM exits, however it ends), or
// when the boot failed: nothing is left to clean up, and no other VM can
// ever open it. It lives in the run root rather than in the VM's own run
// directory because vm.New checks that every drive's file exists, and the
// VM's directory is named after the ID that New allocates.
const (
	// ScratchDriveID is the vm.Drive ID of a VM's scratch disk.
	ScratchDriveID = "scratch"
	// MinScratchSize is the smallest scratch disk mkfs.ext4 formats sensibly.
	MinScratchSize = 16 << 20
	// ScratchPattern names scratch files in the run root.
	ScratchPattern = ".scratch-*.ext4"
)

// ScratchMkfsArgs are mkfs.ext4's options for a scratch disk.
var ScratchMkfsArgs = []string{"-q", "-F", "-O", "^has_journal", "-m", "0", "-E", "lazy_itable_init=1,nodiscard"}

// ErrNoMkfs reports that mkfs.ext4 is missing.
var ErrNoMkfs = errors.New("mkfs.ext4 not found: install it with `apt-get install " + mkfsPackage + "`")

// NewScratchDisk creates and formats a scratch disk of size bytes in
// runRoot (created 0700 if missing, and checked) and returns its path. The
// caller attaches it as the VM's second drive and removes it (see
// RemoveScratchDisk); an image's base is never written.
func NewScratchDisk(ctx context.Context, runRoot string, size int64) (_ string, retErr error) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		if mkfs, err = exec.LookPath("/usr/sbin/mkfs.ext4"); err != nil {
			return "", ErrNoMkfs
		}
	}
	if err := privdir.Ensure(runRoot); err != nil {
		return "", fmt.Errorf("scratch disk: run directory root: %w", err)
	}
	f, err := os.CreateTemp(runRoot, ScratchPattern)
	if err != nil {
		return "", fmt.Errorf("scratch disk: %w", err)
	}
	path := f.Name()
	defer func() {
		if retErr != nil {
			_ = os.Remove(path)
		}
	}()
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("scratch disk: %w", err)
	}
	out, err := exec.CommandContext(ctx, mkfs, append(ScratchMkfsArgs, path)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("scratch disk: mkfs.ext4: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return path, nil
}

// RemoveScratchDisk unlinks a scratch disk; "" is none.
func RemoveScratchDisk(path string) {
	if path != "" {
		_ = os.Remove(path)
	}
}
