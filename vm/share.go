package vm

import (
	"fmt"
	"regexp"

	"github.com/pettyvm/petty/qemu"
)

// Share is a host directory shared with the guest through virtio-fs
// (vhost-user-fs): a virtiofsd serving the directory listens on Socket, and
// the guest mounts it with "mount -t virtiofs TAG DIR" (the guest needs the
// fuse and virtiofs modules, which the image's initramfs loads when the
// device is present). The caller runs the virtiofsd (for example
// /usr/lib/qemu/virtiofsd --socket-path=SOCKET -o source=DIR) before Start
// and stops it after the VM. Shares need QEMU: Firecracker has no file
// sharing (a container's root file system reaches it as a block device).
// QEMU then backs guest memory by a shared memfd, which vhost-user needs.
type Share struct {
	// Tag is the name the guest mounts: letters, digits, '_', '-' and
	// '.', at most 36 bytes (virtio-fs's limit).
	Tag string
	// Socket is the unix socket of the virtiofsd serving the directory.
	Socket string
}

var shareTagPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,36}$`)

// shares validates Config.Shares.
func (v *validator) shares(d *Config) {
	if len(d.Shares) > 0 && d.VMM != QEMU {
		v.add("Shares", "shared directories need the QEMU VMM (Firecracker has no virtio-fs)", nil)
	}
	seen := map[string]bool{}
	for i, s := range d.Shares {
		field := fmt.Sprintf("Shares[%d]", i)
		if !shareTagPattern.MatchString(s.Tag) {
			v.add(field+".Tag", fmt.Sprintf("%q: want 1 to 36 letters, digits, '_', '-' or '.'", s.Tag), nil)
		}
		if seen[s.Tag] {
			v.add(field+".Tag", fmt.Sprintf("%q is used twice", s.Tag), nil)
		}
		seen[s.Tag] = true
		if s.Socket == "" || len(s.Socket) > maxUnixPath {
			v.add(field+".Socket", fmt.Sprintf("%q: want a unix socket path of 1 to %d bytes", s.Socket, maxUnixPath), nil)
		}
	}
}

// qemuShares turns Config.Shares into QEMU's virtio-fs devices.
func qemuShares(c *Config) []qemu.FS {
	var fs []qemu.FS
	for _, s := range c.Shares {
		fs = append(fs, qemu.FS{Tag: s.Tag, Socket: s.Socket})
	}
	return fs
}
