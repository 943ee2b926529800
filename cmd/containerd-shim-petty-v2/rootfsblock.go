package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/pettyvm/petty/vm"
)

// Environment variables that choose the VMM and how root file systems
// reach the guest.
const (
	// envVMM is the pod VMs' monitor: qemu (default), firecracker, or auto
	// (vm.SelectVMM: Firecracker when its binary is found and KVM works).
	envVMM = "PETTY_SHIM_VMM"
	// envRootfs is how a container's root file system reaches the guest:
	// share (virtio-fs, the default under QEMU) or block (an ext4 image
	// attached as a drive at boot; forced under Firecracker).
	envRootfs = "PETTY_SHIM_ROOTFS"
)

// Root file system modes (envRootfs).
const (
	rootfsShare = "share"
	rootfsBlock = "block"
)

// rootDriveID is the vm.Drive ID of a container's root file system image.
const rootDriveID = "ctr_rootfs"

// rootDriveGuestDev is that drive in the guest: the VM's only block device.
const rootDriveGuestDev = "/dev/vda"

// ErrNoHotplug is returned (wrapped) by Create for a second container of a
// pod whose root file systems travel as block devices: the drive of a
// container must be attached when the VM boots (Firecracker cannot
// hot-plug drives), and the VM boots with the pod's first container.
var ErrNoHotplug = errors.New("block-device root file systems: only the pod's first container can have one (Firecracker cannot hot-plug drives)")

// backend is how the pod's VMs run: the monitor, QEMU's accelerator, the
// firecracker executable, and whether root file systems are block devices.
type backend struct {
	VMM            vm.VMM
	Accel          string // QEMU only
	FirecrackerBin string // Firecracker only
	Block          bool
}

// selectBackend reads envVMM, envRootfs and envAccel.
func selectBackend() (backend, error) {
	b := backend{VMM: vm.QEMU, Accel: os.Getenv(envAccel)}
	if b.Accel == "" {
		b.Accel = "auto"
	}
	switch want := vm.VMM(os.Getenv(envVMM)); want {
	case "", vm.QEMU:
	case vm.Firecracker, vm.AutoVMM:
		sel, err := vm.SelectVMM(want, "")
		if err != nil {
			return b, fmt.Errorf("$%s=%s: %w", envVMM, want, err)
		}
		b.VMM, b.FirecrackerBin = sel.VMM, sel.FirecrackerBin
		if sel.VMM == vm.QEMU && os.Getenv(envAccel) == "" {
			b.Accel = sel.Accel
		}
	default:
		return b, fmt.Errorf("$%s=%q: want qemu, firecracker or auto", envVMM, want)
	}
	switch m := os.Getenv(envRootfs); m {
	case "":
		b.Block = b.VMM == vm.Firecracker
	case rootfsShare:
		if b.VMM == vm.Firecracker {
			return b, fmt.Errorf("$%s=share: Firecracker has no file sharing, use block", envRootfs)
		}
	case rootfsBlock:
		b.Block = true
	default:
		return b, fmt.Errorf("$%s=%q: want share or block", envRootfs, m)
	}
	return b, nil
}

// Margins of a root file system image: free space for the container's
// writes and room for ext4's metadata.
const (
	imageFreeBytes  = 256 << 20
	imageSlackRatio = 4 // plus a quarter of the content
	imageMinInodes  = 4096
)

// imageSize returns the size and inode count of an ext4 image that holds
// dir's content with room to spare.
func imageSize(dir string) (size int64, inodes int64, err error) {
	var content int64
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		inodes++
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			content += (info.Size() + 4095) &^ 4095
		} else {
			content += 4096
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("sizing the root file system: %w", err)
	}
	size = content + content/imageSlackRatio + imageFreeBytes
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	return size, max(2*inodes, imageMinInodes), nil
}

// makeRootImage writes an ext4 image of dir at path (mode 0600, sparse)
// with mkfs.ext4 -d (e2fsprogs 1.43 or later). Ownership, modes and
// extended attributes of dir's files carry over.
func makeRootImage(ctx context.Context, dir, path string) error {
	size, inodes, err := imageSize(dir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("root file system image: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("root file system image: %w", err)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-N", strconv.FormatInt(inodes, 10),
		"-L", "ctr-rootfs", "-d", dir, path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.Remove(path)
		return fmt.Errorf("mkfs.ext4 -d %s (package e2fsprogs): %w: %s", dir, err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// rootImageSuffix ends the name of a root file system image in the pod's
// directory: <container id>.rootfs.ext4.
const rootImageSuffix = ".rootfs.ext4"
