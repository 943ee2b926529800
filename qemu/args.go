package qemu

import (
	"strconv"
	"strings"
)

// Accelerators a Spec can name.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// AgentPortName is the name of the virtio-serial port that carries the
// guest agent's channel; the guest sees it as /dev/virtio-ports/petty.agent.
const AgentPortName = "petty.agent"

// Spec describes one QEMU microvm process. Args turns it into
// qemu-system-x86_64's arguments; every path must already be resolved.
type Spec struct {
	// Name is the VM's name (-name), shown in QEMU's messages. Optional.
	Name string
	// Accel is AccelKVM or AccelTCG.
	Accel string
	// VCPUs is the number of vCPUs; SMT groups them in pairs of threads.
	VCPUs int
	SMT   bool
	// MemoryMiB is the guest memory.
	MemoryMiB int

	// Kernel is an uncompressed ELF vmlinux, Initrd an optional initramfs,
	// Cmdline the complete kernel command line.
	Kernel  string
	Initrd  string
	Cmdline string
	// ConfigPath, when set, is the -readconfig file that carries Cmdline
	// (see WriteConfig), kept off QEMU's world-readable argv.
	ConfigPath string

	// Drives are virtio-blk devices in order (the first is /dev/vda).
	Drives []Drive
	// Net is a virtio-net device on an existing tap. Optional.
	Net *NIC
	// VsockCID adds a vhost-vsock device with this guest CID when not 0.
	VsockCID uint32
	// AgentSocket, when set, adds a virtio-serial port named AgentPortName
	// backed by a listening unix socket at this path.
	AgentSocket string
	// QMPSocket is the listening unix socket of the QMP monitor. Required.
	QMPSocket string

	// VsockFD, when not 0 and VsockCID is set, is the number (in QEMU's
	// process) of an open /dev/vhost-vsock whose guest CID the caller has
	// already set to VsockCID (vhostfd=): the caller, not QEMU, owns the
	// CID's allocation.
	VsockFD int
	// Sandbox runs QEMU under its seccomp filter (-sandbox SandboxOptions);
	// see SandboxSupported.
	Sandbox bool
	// FS are virtio-fs devices (vhost-user-fs); with any, guest memory is a
	// shared memfd, which vhost-user needs.
	FS []FS
}

// FS is a virtio-fs device served by a vhost-user backend (virtiofsd).
type FS struct {
	// Tag is the name the guest mounts.
	Tag string
	// Socket is the backend's unix socket.
	Socket string
}

// Drive is a raw disk image attached as virtio-blk.
type Drive struct {
	// ID names the drive (letters, digits and '_').
	ID string
	// Path is the backing file.
	Path string
	// ReadOnly attaches it read-only.
	ReadOnly bool
}

// NIC is a virtio-net device backed by a tap.
type NIC struct {
	// Tap is the name of an existing tap device.
	Tap string
	// MAC is the guest's MAC address; empty lets QEMU pick one.
	MAC string
	// Vhost moves the data path into the kernel (needs /dev/vhost-net).
	Vhost bool
}

// machineOptions are microvm's options: no option ROMs (no firmware to run
// before a direct kernel boot), no legacy PIT/PIC (the guest uses the local
// APIC timer), the ISA serial port for the console. ACPI stays on: it is
// how the guest kernel discovers the virtio-mmio devices.
const machineOptions = "microvm,x-option-roms=off,pit=off,pic=off,isa-serial=on"

// Args returns qemu-system-x86_64's arguments (without argv[0]). The serial
// console goes to stdout; QEMU reads nothing from stdin.
func (s *Spec) Args() []string {
	a := []string{"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"}
	if s.Sandbox {
		a = append(a, "-sandbox", SandboxOptions)
	}
	if s.Name != "" {
		a = append(a, "-name", escape(s.Name))
	}
	if len(s.FS) > 0 {
		a = append(a, "-object", "memory-backend-memfd,id=mem,share=on,size="+strconv.Itoa(s.MemoryMiB)+"M",
			"-M", machineOptions+",memory-backend=mem",
			// libvhost-user (virtiofsd) serves only modern virtio devices.
			"-global", "virtio-mmio.force-legacy=false")
	} else {
		a = append(a, "-M", machineOptions)
	}
	switch s.Accel {
	case AccelKVM:
		a = append(a, "-accel", "kvm", "-cpu", "host")
	default:
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	a = append(a, "-m", strconv.Itoa(s.MemoryMiB)+"M", "-smp", s.smp())
	a = append(a, "-kernel", s.Kernel)
	if s.Initrd != "" {
		a = append(a, "-initrd", s.Initrd)
	}
	if s.ConfigPath != "" {
		a = append(a, "-readconfig", s.ConfigPath)
	} else {
		a = append(a, "-append", s.Cmdline)
	}
	a = append(a, "-serial", "stdio")
	for _, d := range s.Drives {
		opts := "if=none,id=" + d.ID + ",file=" + escape(d.Path) + ",format=raw,cache=writeback,aio=threads"
		if d.ReadOnly {
			opts += ",readonly=on"
		}
		a = append(a, "-drive", opts, "-device", "virtio-blk-device,drive="+d.ID)
	}
	if n := s.Net; n != nil {
		vhost := "off"
		if n.Vhost {
			vhost = "on"
		}
		a = append(a, "-netdev", "tap,id=net0,ifname="+escape(n.Tap)+",script=no,downscript=no,vhost="+vhost)
		dev := "virtio-net-device,netdev=net0"
		if n.MAC != "" {
			dev += ",mac=" + n.MAC
		}
		a = append(a, "-device", dev)
	}
	if s.VsockCID != 0 {
		dev := "vhost-vsock-device,guest-cid=" + strconv.FormatUint(uint64(s.VsockCID), 10)
		if s.VsockFD != 0 {
			dev += ",vhostfd=" + strconv.Itoa(s.VsockFD)
		}
		a = append(a, "-device", dev)
	}
	if s.AgentSocket != "" {
		a = append(a,
			"-device", "virtio-serial-device,max_ports=2",
			"-chardev", "socket,id=agent,path="+escape(s.AgentSocket)+",server=on,wait=off",
			"-device", "virtserialport,chardev=agent,name="+AgentPortName,
		)
	}
	for i, f := range s.FS {
		id := "fs" + strconv.Itoa(i)
		a = append(a, "-chardev", "socket,id="+id+",path="+escape(f.Socket),
			"-device", "vhost-user-fs-device,chardev="+id+",tag="+escape(f.Tag))
	}
	a = append(a,
		"-chardev", "socket,id=qmp,path="+escape(s.QMPSocket)+",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
	)
	return a
}

func (s *Spec) smp() string {
	n := max(s.VCPUs, 1)
	threads := 1
	if s.SMT && n > 1 {
		threads = 2
	}
	return "cpus=" + strconv.Itoa(n) + ",sockets=1,cores=" + strconv.Itoa(n/threads) + ",threads=" + strconv.Itoa(threads)
}

// escape doubles the commas of a value inside a QEMU option list, where a
// single comma separates options. (-kernel, -initrd and -append take their
// argument verbatim.)
func escape(v string) string { return strings.ReplaceAll(v, ",", ",,") }
