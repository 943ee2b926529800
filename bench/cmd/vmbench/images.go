package main

import (
	"os"
	"path/filepath"
)

// The machine both drivers configure.
const (
	vcpus    = 2
	memMiB   = 256
	bootArgs = "console=ttyS0 reboot=k panic=1 pci=off"
	guestCID = 3
)

// images are the dummy kernel and root drive files: the fake opens them but
// never reads a byte.
type images struct{ kernel, rootfs string }

func newImages(dir string) (images, error) {
	img := images{kernel: filepath.Join(dir, "vmlinux"), rootfs: filepath.Join(dir, "rootfs.ext4")}
	for _, p := range []string{img.kernel, img.rootfs} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			return images{}, err
		}
	}
	return img, nil
}
