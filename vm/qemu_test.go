package vm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestQEMUArgs checks the qemu-system-x86_64 command line built for a
// table of configs.
func TestQEMUArgs(t *testing.T) {
	const runDir = "/run/petty/0123456789abcdef"
	base := func() Config {
		return Config{VMM: QEMU, Kernel: "/img/vmlinux", Initrd: "/img/initrd.img"}.withDefaults()
	}
	tcgHost := qemuHost{tscKHz: 2_900_000}
	head := func(accel, cpu, smp string) []string {
		return []string{
			"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
			"-name", "petty-0123456789abcdef",
			"-M", "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on",
			"-accel", accel, "-cpu", cpu,
			"-m", "256M", "-smp", smp,
			"-kernel", "/img/vmlinux", "-initrd", "/img/initrd.img",
		}
	}
	serialAgent := []string{
		"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=agent,path=" + runDir + "/agent.sock,server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=petty.agent",
	}
	qmp := []string{
		"-chardev", "socket,id=qmp,path=" + runDir + "/qmp.sock,server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
	}
	const tcgCmdline = DefaultBootArgs + " tsc_early_khz=2900000 no_timer_check cryptomgr.notests quiet"
	const listen = " petty.listen=serial:///dev/virtio-ports/petty.agent"
	join := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	tests := []struct {
		name string
		edit func(*Config)
		host qemuHost
		want []string
	}{
		{
			name: "minimal tcg, serial agent",
			edit: func(c *Config) { c.Accel = "tcg" },
			host: tcgHost,
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", tcgCmdline + listen, "-serial", "stdio"}, serialAgent, qmp),
		},
		{
			name: "auto picks tcg without usable kvm",
			host: qemuHost{kvm: false, kvmWhy: "nested PVM"},
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", DefaultBootArgs + " no_timer_check cryptomgr.notests quiet" + listen, "-serial", "stdio"}, serialAgent, qmp),
		},
		{
			name: "auto picks kvm when usable, smt",
			edit: func(c *Config) { c.VCPUs, c.SMT = 4, true },
			host: qemuHost{kvm: true, tscKHz: 2_900_000},
			want: join(head("kvm", "host", "cpus=4,sockets=1,cores=2,threads=2"),
				[]string{"-append", DefaultBootArgs + " cryptomgr.notests quiet" + listen, "-serial", "stdio"}, serialAgent, qmp),
		},
		{
			name: "kvm forced even when the probe says no",
			edit: func(c *Config) { c.Accel, c.VCPUs = "kvm", 1 },
			host: qemuHost{kvm: false},
			want: join(head("kvm", "host", "cpus=1,sockets=1,cores=1,threads=1"),
				[]string{"-append", DefaultBootArgs + " cryptomgr.notests quiet" + listen, "-serial", "stdio"}, serialAgent, qmp),
		},
		{
			name: "root drive rw and extra drives ro/rw",
			edit: func(c *Config) {
				c.Accel = "tcg"
				c.RootDrive = Drive{ID: "rootfs", Path: "/img/root,fs.ext4"}
				c.Drives = []Drive{{ID: "data", Path: "/d/data.img"}, {ID: "ro", Path: "/d/ro.img", ReadOnly: true}}
			},
			host: tcgHost,
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", DefaultBootArgs + " root=/dev/vda rw tsc_early_khz=2900000 no_timer_check cryptomgr.notests quiet" + listen, "-serial", "stdio",
					// Writable drives: the run directory's link (linkDrives).
					"-drive", "if=none,id=rootfs,file=" + runDir + "/drive-rootfs.img,format=raw,cache=writeback,aio=threads", "-device", "virtio-blk-device,drive=rootfs",
					"-drive", "if=none,id=data,file=" + runDir + "/drive-data.img,format=raw,cache=writeback,aio=threads", "-device", "virtio-blk-device,drive=data",
					"-drive", "if=none,id=ro,file=/d/ro.img,format=raw,cache=writeback,aio=threads,readonly=on", "-device", "virtio-blk-device,drive=ro",
				}, serialAgent, qmp),
		},
		{
			name: "read-only root, user params kept",
			edit: func(c *Config) {
				c.Accel = "tcg"
				c.BootArgs = "console=ttyS0 quiet tsc_early_khz=1000"
				c.RootDrive = Drive{ID: "rootfs", Path: "/img/rootfs.ext4", ReadOnly: true}
			},
			host: tcgHost,
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", "console=ttyS0 quiet tsc_early_khz=1000 root=/dev/vda ro no_timer_check cryptomgr.notests" + listen, "-serial", "stdio",
					"-drive", "if=none,id=rootfs,file=/img/rootfs.ext4,format=raw,cache=writeback,aio=threads,readonly=on", "-device", "virtio-blk-device,drive=rootfs",
				}, serialAgent, qmp),
		},
		{
			name: "network with mac, no vhost-net",
			edit: func(c *Config) { c.Accel = "tcg"; c.Network = &Network{Tap: "tap0", MAC: "06:00:ac:10:00:02"} },
			host: tcgHost,
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", tcgCmdline + listen, "-serial", "stdio",
					"-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=off",
					"-device", "virtio-net-device,netdev=net0,mac=06:00:ac:10:00:02",
				}, serialAgent, qmp),
		},
		{
			name: "network without mac, vhost-net",
			edit: func(c *Config) { c.Accel = "tcg"; c.Network = &Network{Tap: "tap0"} },
			host: qemuHost{tscKHz: 2_900_000, vhostNet: true},
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", tcgCmdline + listen, "-serial", "stdio",
					"-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=on",
					"-device", "virtio-net-device,netdev=net0",
				}, serialAgent, qmp),
		},
		{
			name: "vsock with vhost-vsock",
			edit: func(c *Config) { c.Accel = "tcg"; c.Vsock = &Vsock{CID: 7} },
			host: qemuHost{tscKHz: 2_900_000, vhostVsock: true},
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", tcgCmdline, "-serial", "stdio",
					"-device", "vhost-vsock-device,guest-cid=7",
				}, qmp),
		},
		{
			name: "vsock without vhost-vsock falls back to serial",
			edit: func(c *Config) { c.Accel = "tcg"; c.Vsock = &Vsock{CID: 7} },
			host: tcgHost,
			want: join(head("tcg,thread=multi", "max", "cpus=2,sockets=1,cores=2,threads=1"),
				[]string{"-append", tcgCmdline + listen, "-serial", "stdio"}, serialAgent, qmp),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			if tt.edit != nil {
				tt.edit(&c)
			}
			orig := c.clone()
			spec := qemuSpec("0123456789abcdef", &c, runDir, tt.host)
			if diff := cmp.Diff(tt.want, spec.Args()); diff != "" {
				t.Errorf("args mismatch (-want +got):\n%s\ngot: %s", diff, strings.Join(spec.Args(), " "))
			}
			if diff := cmp.Diff(orig.withoutFuncs(), c.withoutFuncs()); diff != "" {
				t.Errorf("qemuSpec modified the config:\n%s", diff)
			}
		})
	}
}

// withoutFuncs drops the fields go-cmp cannot compare.
func (c Config) withoutFuncs() Config {
	c.Logger, c.Console = nil, nil
	return c
}

func TestQEMUCmdlineParams(t *testing.T) {
	tests := []struct {
		args []string
		key  string
		want bool
	}{
		{[]string{"quiet"}, "quiet", true},
		{[]string{"quiet=1"}, "quiet", true},
		{[]string{"loglevel=3"}, "quiet", false},
		{[]string{"tsc_early_khz=1"}, "tsc_early_khz", true},
		{[]string{"notsc_early_khz"}, "tsc_early_khz", false},
	}
	for _, tt := range tests {
		if got := hasParam(tt.args, tt.key); got != tt.want {
			t.Errorf("hasParam(%q, %q) = %v, want %v", tt.args, tt.key, got, tt.want)
		}
	}
}
