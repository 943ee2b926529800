package vm

import (
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pettyvm/petty/qemu"
)

// Socket names in a QEMU VM's run directory.
const (
	qmpSocketName   = "qmp.sock"
	agentSocketName = "agent.sock"
)

// agentSerialListen is the guest agent's --listen URI on the virtio-serial
// port (see package agent); the initramfs /init reads it from petty.listen=.
const agentSerialListen = "serial:///dev/virtio-ports/" + qemu.AgentPortName

// qemuHost is what the QEMU backend needs to know about the host; probed
// once per boot, a plain value in tests.
type qemuHost struct {
	kvm        bool   // KVM can run stock guests
	kvmWhy     string // why not, when !kvm
	tscKHz     int    // host TSC frequency, 0 if unknown
	vhostNet   bool   // /dev/vhost-net is usable
	vhostVsock bool   // /dev/vhost-vsock is usable
	sandbox    bool   // QEMU supports -sandbox qemu.SandboxOptions
}

// probeHost is probeQEMUHost; tests replace it.
var probeHost = probeQEMUHost

// probeQEMUHost probes the host. KVM is only probed when accel needs it.
func probeQEMUHost(accel string) qemuHost {
	h := qemuHost{
		tscKHz:     qemu.HostTSCkHz(),
		vhostNet:   qemu.VhostNetAvailable(),
		vhostVsock: qemu.VhostVsockAvailable(),
	}
	if accel == "auto" {
		h.kvm, h.kvmWhy = qemu.KVMUsable()
	}
	return h
}

// qemuAccel resolves Config.Accel: "auto" means KVM when it can boot stock
// guests here, TCG otherwise.
func qemuAccel(accel string, h qemuHost) string {
	switch accel {
	case "kvm":
		return qemu.AccelKVM
	case "tcg":
		return qemu.AccelTCG
	}
	if h.kvm {
		return qemu.AccelKVM
	}
	return qemu.AccelTCG
}

// qemuSpec turns a defaulted Config into QEMU's process description. The
// agent's channel is vhost-vsock when the Config has a vsock device and the
// host can provide one, a virtio-serial port otherwise.
func qemuSpec(id string, c *Config, runDir string, h qemuHost) qemu.Spec {
	accel := qemuAccel(c.Accel, h)
	s := qemu.Spec{
		Name:      "petty-" + id,
		Accel:     accel,
		VCPUs:     c.VCPUs,
		SMT:       c.SMT,
		MemoryMiB: c.MemoryMiB,
		Kernel:    c.Kernel,
		Initrd:    c.Initrd,
		QMPSocket: filepath.Join(runDir, qmpSocketName),
		Sandbox:   h.sandbox,
		FS:        qemuShares(c),
	}
	for _, d := range c.allDrives() {
		s.Drives = append(s.Drives, qemu.Drive{ID: d.ID, Path: drivePath(runDir, d), ReadOnly: d.ReadOnly})
	}
	if n := c.Network; n != nil {
		s.Net = &qemu.NIC{Tap: n.Tap, MAC: n.MAC, Vhost: h.vhostNet}
	}
	serialAgent := c.Vsock == nil || !h.vhostVsock
	if serialAgent {
		s.AgentSocket = filepath.Join(runDir, agentSocketName)
	} else {
		s.VsockCID = c.Vsock.CID
	}
	s.Cmdline = qemuCmdline(c, accel, h, serialAgent)
	return s
}

// qemuCmdline is the guest kernel command line: Config.BootArgs, then the
// root device, then what a microvm guest needs.
func qemuCmdline(c *Config, accel string, h qemuHost, serialAgent bool) string {
	args := strings.Fields(c.BootArgs)
	add := func(param string) {
		key, _, _ := strings.Cut(param, "=")
		if !hasParam(args, key) {
			args = append(args, param)
		}
	}
	if r := c.RootDrive; r.Path != "" {
		mode := "rw"
		if r.ReadOnly {
			mode = "ro"
		}
		args = append(args, "root=/dev/vda", mode)
	}
	if accel == qemu.AccelTCG {
		// Without a PIT the TCG guest calibrates its TSC against nothing
		// reliable; a few boots in ten hang there.
		if h.tscKHz > 0 {
			add("tsc_early_khz=" + strconv.Itoa(h.tscKHz))
		}
		add("no_timer_check")
	}
	add("cryptomgr.notests") // self-tests cost a second of TCG boot
	add("quiet")             // every console byte is a trap to the VMM
	if serialAgent {
		args = append(args, "petty.listen="+agentSerialListen)
	}
	return strings.Join(args, " ")
}

// hasParam reports whether a kernel parameter named key ("quiet",
// "tsc_early_khz") is among args, with or without a value.
func hasParam(args []string, key string) bool {
	for _, a := range args {
		if k, _, _ := strings.Cut(a, "="); k == key {
			return true
		}
	}
	return false
}
