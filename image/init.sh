#!/bin/sh
# petty initramfs shell init, written by github.com/pettyvm/petty/image.
# It is /init.sh, run as PID 1 by the agent (itself /init) when the kernel
# command line has root= or petty.root=; it is /init when the agent cannot
# be init. The agent as /init does the rest of this script's work itself
# (see agent.BootInitramfs); keep the two in step.
#
# Mounts /proc, /sys and /dev, loads the kernel modules listed in
# /etc/petty/modules.load that this machine's devices need, names virtio
# serial ports under /dev/virtio-ports like udev does, then runs the agent
# as PID 1:
#   - from the disk given by root=/dev/... or petty.root=... (switch_root),
#     mounted read-only with "ro", read-write otherwise;
#   - else from this initramfs.
# Kernel parameters: petty.listen=ADDR (default vsock://:1024),
# petty.root=DEV, root=DEV, rootfstype=TYPE (default ext4), ro, rw,
# petty.agent=PATH (the agent's path inside the root, default /sbin/petty-agent).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

fail() {
	echo "petty-init: $*" >&2
}

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev

# modules.load: "CONDITIONS PATH" per line, in load order. CONDITIONS is
# "always" or a comma-separated list of devices, any of which needs the
# module: virtio:ID (a virtio device, ID as in /sys/bus/virtio/devices/*/device)
# or pci:VENDOR (as in /sys/bus/pci/devices/*/vendor). Every insmod costs
# tens of milliseconds under TCG, so modules for absent devices are skipped.
# The devices are listed again after each load: a transport module
# (virtio_mmio, virtio_pci) registers its devices while it loads.
devices=
scan_devices() {
	devices=" "
	for f in /sys/bus/pci/devices/*/vendor /sys/bus/virtio/devices/*/device; do
		[ -r "$f" ] || continue
		read -r id <"$f" || continue
		case "$f" in
		/sys/bus/pci/*) devices="${devices}pci:$id " ;;
		*) devices="${devices}virtio:$id " ;;
		esac
	done
}
needed() {
	[ "$1" = always ] && return 0
	[ -n "$devices" ] || scan_devices
	local IFS=, c
	for c in $1; do
		case "$devices" in *" $c "*) return 0 ;; esac
	done
	return 1
}
while read -r when mod; do
	[ -n "$mod" ] && needed "$when" || continue
	insmod "$mod" || fail "insmod $mod failed"
	devices=
done </etc/petty/modules.load

# virtio_console adds a device's ports after it has loaded, when the host
# answers the driver's "device ready", and the host names them after that;
# wait up to about a second for every console device to have its ports
# (the host adds them in one batch) and for every port to have a name.
has_port() {
	for p in "$1"/virtio-ports/vport*; do
		[ -e "$p" ] && return 0
	done
	return 1
}
tries=100
for dev in /sys/bus/virtio/devices/*; do
	read -r id <"$dev/device" || continue
	[ "$id" = 0x0003 ] || continue
	while ! has_port "$dev" && [ "$tries" -gt 0 ]; do
		sleep 0.01
		tries=$((tries - 1))
	done
	for port in "$dev"/virtio-ports/vport*; do
		name=
		while read -r name <"$port/name" || true; [ -z "$name" ] && [ "$tries" -gt 0 ]; do
			sleep 0.01
			tries=$((tries - 1))
		done
		if [ -n "$name" ]; then
			mkdir -p /dev/virtio-ports
			ln -sf "../${port##*/}" "/dev/virtio-ports/$name"
		fi
	done
done 2>/dev/null

listen=vsock://:1024
root=
rootfstype=ext4
rootmode=rw
agent=/sbin/petty-agent
read -r cmdline </proc/cmdline
for arg in $cmdline; do
	case "$arg" in
	petty.listen=*) listen=${arg#petty.listen=} ;;
	petty.root=*) root=${arg#petty.root=} ;;
	root=/dev/*) [ -z "$root" ] && root=${arg#root=} ;;
	rootfstype=*) rootfstype=${arg#rootfstype=} ;;
	petty.agent=*) agent=${arg#petty.agent=} ;;
	ro) rootmode=ro ;;
	rw) rootmode=rw ;;
	esac
done

if [ -n "$root" ]; then
	mkdir -p /newroot
	if mount -t "$rootfstype" -o "$rootmode" "$root" /newroot; then
		if [ ! -x "/newroot$agent" ]; then
			# A root without the agent: bring ours along on a tmpfs.
			mkdir -p /newroot/run 2>/dev/null
			mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run &&
				mkdir -p /newroot/run/petty &&
				cp /sbin/petty-agent /newroot/run/petty/petty-agent &&
				agent=/run/petty/petty-agent
		fi
		for fs in dev proc sys; do
			if [ -d "/newroot/$fs" ]; then
				mount --move "/$fs" "/newroot/$fs"
			else
				umount -l "/$fs"
			fi
		done
		exec switch_root /newroot "$agent" --listen "$listen"
		fail "switch_root to $root failed"
	else
		fail "cannot mount $root ($rootfstype, $rootmode); running the agent from the initramfs"
	fi
fi

exec /sbin/petty-agent --listen "$listen"
