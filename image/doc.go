// Package image builds the guest image petty boots: an uncompressed ELF
// vmlinux extracted from a Debian kernel installed on the host, a gzip'd
// cpio (newc) initramfs holding busybox, the petty-agent and the virtio and
// vsock kernel modules the guest needs, and optionally a small ext4 root
// filesystem.
//
// Everything is built in Go from files already on the host (packages
// linux-image-cloud-amd64, busybox-static and, for the root filesystem,
// e2fsprogs); nothing needs root, loop devices or mounts. Outputs are
// deterministic and stored in a content-addressed cache, so the same inputs
// always give byte-identical files and a second Build is a cache hit.
package image
