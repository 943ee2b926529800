// Package image builds the guest image petty boots: an uncompressed ELF
// vmlinux extracted from a Debian kernel installed on the host, an
// uncompressed cpio (newc) initramfs holding busybox, the petty-agent and
// the virtio and vsock kernel modules the guest may need, and optionally a
// small ext4 root filesystem. (The initramfs is not compressed: under TCG
// the kernel takes about 0.2s to gunzip it, far longer than copying it.)
//
// Everything is built in Go from files already on the host (packages
// linux-image-cloud-amd64, busybox-static and, for the root filesystem,
// e2fsprogs); nothing needs root, loop devices or mounts. Outputs are
// deterministic and stored in a content-addressed cache, so the same inputs
// always give byte-identical files and a second Build is a cache hit.
//
// # Image store
//
// A [Store] keeps named images, one directory each (see [Manifest]):
// manifest.json, vmlinux, initrd.cpio and, but for the minimal image,
// rootfs.ext4, the base root file system every VM boots read-only
// (all files 0444). [Store.Build] builds an image in a temporary directory
// inside the store and renames it into place, so a failed build leaves the
// store unchanged, and returns at once when the image was built from the
// same inputs. Images are:
//
//   - Debian ([DefaultImage] and --packages images): [DefaultPackages] plus
//     extra packages from the release and mirror of the host's apt sources
//     ([HostDebianSource]), installed by mmdebstrap (variant apt, no
//     recommends, no documentation, apt lists removed) with a user "user"
//     (uid and gid 1000, home /home/user, shell /bin/bash) beside root.
//     SOURCE_DATE_EPOCH is the archive's Release date, so the same archive
//     state gives the same image; the archive is only asked for its state
//     with BuildSpec.Refresh. The mmdebstrap tarball is kept beside the image
//     so a rebuild for a new agent or kernel does not install again.
//   - tarballs (BuildSpec.FromTar): a root file system tarball with /bin/sh,
//     plain or gzip, xz or zstd compressed, extracted through an os.Root.
//   - [MinimalImage]: the busybox initramfs of [Build], no root file system.
//
// Every root file system gets the agent at /usr/local/sbin/petty-agent and
// is written by mkfs.ext4 -d with no journal, a UUID and hash seed derived
// from the inputs and fixed times, so identical inputs give identical
// bytes. The initramfs of an image with a root file system also holds the
// ext4 and overlay modules (when not built in), loaded with virtio_blk.
//
// # Guest contract
//
// The initramfs's /init is the petty-agent itself (a symlink to
// /sbin/petty-agent) when the agent executable contains
// guest.InitramfsInitProtocol, as every petty-agent does; under TCG each
// fork and exec of a shell or busybox costs tens of milliseconds. Started
// as PID 1 with argv[0] "/init" the agent mounts /proc and reads the kernel
// command line. With root= or petty.root= it execs "/bin/busybox sh
// /init.sh", the shell init, which does what follows and then switches
// root. Otherwise the agent mounts /proc, /sys, /dev (devtmpfs), /dev/pts,
// /tmp and /run (tmpfs), loads with finit_module(2) the modules listed in
// /etc/petty/modules.load that the machine's devices need, under the same
// conditions as the shell init (below), links the named virtio serial
// ports as /dev/virtio-ports/<name>, waiting up to a second for them to
// appear and be named, and serves on petty.listen=. With any other agent
// executable the shell init is /init itself.
//
// The shell init mounts /proc, /sys and /dev (devtmpfs), loads
// virtio_mmio, then the kernel modules (with their dependencies) of the
// devices the machine has: virtio_pci when there is a virtio PCI device
// (vendor 0x1af4), then, for the virtio devices found in
// /sys/bus/virtio/devices, virtio_blk (block), virtio_net (net),
// virtio_console (console) and vsock with vmw_vsock_virtio_transport
// (vsock). Modules of absent devices are not loaded (so without a vsock
// device there is no /dev/vsock); the devices are fixed at boot, as
// microvm and Firecracker have no hotplug. It then links the named virtio
// serial ports as /dev/virtio-ports/<name> and execs
// "/sbin/petty-agent --listen ADDR" as PID 1 with those three file systems
// still mounted. Ports are added and named asynchronously after
// virtio_console loads: a serial:// port that is not there yet is waited
// for (up to 10s) and linked by the agent itself. Kernel command line
// parameters:
//
//	petty.listen=ADDR   the agent's --listen (default vsock://:1024; for
//	                    QEMU without vhost-vsock use
//	                    serial:///dev/virtio-ports/petty.agent)
//	petty.token=SECRET  the per-boot secret every host connection must
//	                    present (agent.Authenticate); petty's VMM backends
//	                    set it; without it the agent accepts any
//	root=/dev/DEV       mount DEV (rootfstype=, default ext4; "ro" for
//	petty.root=DEV      read-only) and switch_root into it, moving /dev,
//	                    /proc and /sys; the agent runs from the new root's
//	                    /sbin/petty-agent, or from a copy on a tmpfs at /run
//	                    when that root lacks it
//	petty.agent=PATH    the agent's path inside that root
//
// Without root= or petty.root= the agent runs from the initramfs.
package image
