package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// Kernel parameters of the overlay root (see internal/guest): the base is
// the first drive, the scratch disk the second.
const (
	baseDevice    = "/dev/vda"
	scratchDevice = "/dev/vdb"
)

// manifestName is an image directory's manifest (package image's store).
const manifestName = "manifest.json"

// errNoManifest reports an --image PATH without a manifest.json.
var errNoManifest = errors.New("not an image directory (no " + manifestName + ")")

// imageManifest is what run reads of an image directory's manifest.json:
// file names relative to the directory; RootFS is "" for an
// initramfs-only image.
type imageManifest struct {
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd"`
	RootFS string `json:"rootfs"`
}

// isImagePath reports whether --image names a directory rather than an
// image of the store: store names never contain a slash.
func isImagePath(s string) bool { return strings.ContainsRune(s, '/') }

// imageFromDir reads the image in dir (manifest.json and its files).
func imageFromDir(dir string) (guestImage, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, os.ErrNotExist) {
		return guestImage{}, fmt.Errorf("--image %s: %w", dir, errNoManifest)
	}
	if err != nil {
		return guestImage{}, fmt.Errorf("--image %s: %w", dir, err)
	}
	var m imageManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return guestImage{}, fmt.Errorf("--image %s: %s: %w", dir, manifestName, err)
	}
	if m.Kernel == "" {
		return guestImage{}, fmt.Errorf("--image %s: %s names no kernel", dir, manifestName)
	}
	img := guestImage{kernel: filepath.Join(dir, m.Kernel)}
	if m.Initrd != "" {
		img.initrd = filepath.Join(dir, m.Initrd)
	}
	if m.RootFS != "" {
		img.base = filepath.Join(dir, m.RootFS)
	}
	return img, nil
}

// storeImage returns the image name of the store, building the default
// image (with progress) when it is not there yet.
func storeImage(ctx context.Context, name string, prog *progress, log *slog.Logger) (guestImage, error) {
	s, err := image.DefaultStore()
	if err != nil {
		return guestImage{}, fmt.Errorf("image store: %w", err)
	}
	st, err := s.Get(name)
	var nie *image.NoImageError
	if errors.As(err, &nie) && name == image.DefaultImage {
		prog.step("building image %s (once; later runs reuse it)", name)
		st, err = buildStoreImage(ctx, s, image.BuildSpec{Name: name}, prog, log)
	} else if errors.As(err, &nie) {
		have := "none"
		if len(nie.Have) > 0 {
			have = strings.Join(nie.Have, ", ")
		}
		return guestImage{}, fmt.Errorf("unknown image %q (images: %s; %s is always available; build one with `petty image build --name NAME`): %w", name, have, image.MinimalImage, err)
	}
	if err != nil {
		return guestImage{}, err
	}
	return guestImage{kernel: st.Kernel, initrd: st.Initrd, base: st.RootFS}, nil
}

// addOverlayRoot attaches img's base read-only as the root drive and a new
// scratch disk of size bytes as the second drive, and tells the guest's
// init to stack them (see scratch.go); with a network (--tap) it also hands
// the guest the host's name servers. It returns the scratch disk's path,
// for the caller to unlink once the VM booted.
func addOverlayRoot(ctx context.Context, cfg *vm.Config, img guestImage, runRoot string, size int64, hostname string) (string, error) {
	scratch, err := image.NewScratchDisk(ctx, runRoot, size)
	if err != nil {
		return "", err
	}
	cfg.RootDrive = vm.Drive{Path: absPath(img.base), ReadOnly: true}
	cfg.Drives = append([]vm.Drive{{ID: image.ScratchDriveID, Path: scratch}}, cfg.Drives...)
	args := []string{vm.DefaultBootArgs, "petty.root=" + baseDevice, "petty.scratch=" + scratchDevice}
	if hostname != "" {
		args = append(args, "petty.hostname="+hostname)
	}
	if cfg.Network != nil {
		// A VM with a network resolves names as the host does: the
		// agent writes /etc/resolv.conf unless the image has one.
		if ns := hostNameservers(); len(ns) > 0 {
			args = append(args, "petty.dns="+strings.Join(ns, ","))
		}
	}
	cfg.BootArgs = strings.Join(args, " ")
	return scratch, nil
}
