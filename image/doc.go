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
//
// # Guest contract
//
// The initramfs's /init mounts /proc, /sys and /dev (devtmpfs), loads
// virtio_mmio, virtio_pci, virtio_blk, virtio_net, virtio_console, vsock
// and vmw_vsock_virtio_transport with their dependencies, links named
// virtio serial ports as /dev/virtio-ports/<name>, and then execs
// "/sbin/petty-agent --listen ADDR" as PID 1 with those three file systems
// still mounted. Kernel command line parameters:
//
//	petty.listen=ADDR   the agent's --listen (default vsock://:1024; for
//	                    QEMU without vhost-vsock use
//	                    serial:///dev/virtio-ports/petty.agent)
//	root=/dev/DEV       mount DEV (rootfstype=, default ext4; "ro" for
//	petty.root=DEV      read-only) and switch_root into it, moving /dev,
//	                    /proc and /sys; the agent runs from the new root's
//	                    /sbin/petty-agent, or from a copy on a tmpfs at /run
//	                    when that root lacks it
//	petty.agent=PATH    the agent's path inside that root
//
// Without root= or petty.root= the agent runs from the initramfs.
package image
