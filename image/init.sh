#!/bin/sh
# petty initramfs /init, written by github.com/pettyvm/petty/image.
#
# Mounts /proc, /sys and /dev, loads the kernel modules listed in
# /etc/petty/modules.load, names virtio serial ports under
# /dev/virtio-ports like udev does, then runs the agent as PID 1:
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

while read -r mod; do
	[ -n "$mod" ] && { insmod "$mod" || fail "insmod $mod failed"; }
done </etc/petty/modules.load

# The host names ports asynchronously after the driver binds; wait up to
# about a second for every port to have a name.
if [ -d /sys/class/virtio-ports ]; then
	mkdir -p /dev/virtio-ports
	tries=100
	for port in /sys/class/virtio-ports/*; do
		[ -e "$port/name" ] || continue
		while [ ! -s "$port/name" ] && [ "$tries" -gt 0 ]; do
			sleep 0.01
			tries=$((tries - 1))
		done
		read -r name <"$port/name" || true
		[ -n "$name" ] && ln -sf "../${port##*/}" "/dev/virtio-ports/$name"
	done
fi

listen=vsock://:1024
root=
rootfstype=ext4
rootmode=rw
agent=/sbin/petty-agent
for arg in $(cat /proc/cmdline); do
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
