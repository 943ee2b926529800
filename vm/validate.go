package vm

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/privdir"
	"github.com/pettyvm/petty/qemu"
)

// maxUnixPath is the longest usable unix socket path (sun_path minus NUL).
const maxUnixPath = 107

// idLen is the length of a Machine ID; run-dir paths are checked against it.
const idLen = 16

// longestSocketName is the longest file name petty puts in a run directory
// (a guest→host vsock listener "vsock.sock_<port>").
const longestSocketName = "vsock.sock_4294967295"

var driveIDPattern = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// Validate reports every problem of c at once (joined with errors.Join), each
// as a *FieldError naming its field; nil means c is valid. Defaults are
// applied first, so zero values are valid where a default exists.
func (c Config) Validate() error {
	d := c.withDefaults()
	var v validator
	v.vmm(&d)
	v.cpuMem(&d)
	v.file("Kernel", d.Kernel, true, false)
	v.file("Initrd", d.Initrd, false, false)
	v.drives(&d)
	v.cmdline(&d)
	v.network(d.Network)
	v.vsock(&d)
	v.shares(&d)
	v.runDir(d.RunDir)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(field, problem string, err error) {
	v.errs = append(v.errs, &FieldError{Field: field, Problem: problem, Err: err})
}

func (v *validator) vmm(d *Config) {
	switch d.VMM {
	case Firecracker:
		v.binary("FirecrackerBin", d.FirecrackerBin,
			"set Config.FirecrackerBin or $"+FirecrackerBinEnv+", or put firecracker (v1.16) in $PATH")
	case QEMU:
		v.binary("QEMUBin", d.QEMUBin, "apt-get install qemu-system-x86")
	default:
		v.add("VMM", fmt.Sprintf("unknown VMM %q (want %q or %q)", d.VMM, Firecracker, QEMU), nil)
	}
	switch d.Accel {
	case "auto", "kvm", "tcg":
	default:
		v.add("Accel", fmt.Sprintf("unknown accelerator %q (want auto, kvm or tcg)", d.Accel), nil)
	}
}

func (v *validator) binary(field, path, fix string) {
	if _, err := exec.LookPath(path); err != nil {
		v.add(field, fmt.Sprintf("%q not found or not executable (%s)", path, fix), nil)
	}
}

func (v *validator) cpuMem(d *Config) {
	switch {
	case d.VCPUs < 1 || d.VCPUs > MaxVCPUs:
		v.add("VCPUs", fmt.Sprintf("must be between 1 and %d, got %d", MaxVCPUs, d.VCPUs), nil)
	case d.SMT && d.VCPUs > 1 && d.VCPUs%2 != 0:
		v.add("VCPUs", fmt.Sprintf("must be 1 or even with SMT, got %d", d.VCPUs), nil)
	}
	if d.MemoryMiB < MinMemoryMiB {
		v.add("MemoryMiB", fmt.Sprintf("must be at least %d, got %d", MinMemoryMiB, d.MemoryMiB), nil)
	} else if host := hostMemoryMiB(); host > 0 && d.MemoryMiB > host {
		v.add("MemoryMiB", fmt.Sprintf("%d exceeds the host's memory (%d MiB)", d.MemoryMiB, host), nil)
	}
}

// file checks that path names a readable (and, if writable, writable)
// regular file; an empty path is an error only when required.
func (v *validator) file(field, path string, required, writable bool) {
	if path == "" {
		if required {
			v.add(field, "required", nil)
		}
		return
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		v.add(field, fmt.Sprintf("cannot use %q", path), err)
		return
	case fi.IsDir():
		v.add(field, fmt.Sprintf("%q is a directory", path), nil)
		return
	}
	mode := uint32(unix.R_OK)
	if writable {
		mode |= unix.W_OK
	}
	if err := unix.Access(path, mode); err != nil {
		v.add(field, fmt.Sprintf("cannot open %q", path), &os.PathError{Op: "access", Path: path, Err: err})
	}
}

func (v *validator) drives(d *Config) {
	seen := map[string]string{}
	check := func(field string, dr Drive) {
		switch {
		case !driveIDPattern.MatchString(dr.ID):
			v.add(field+".ID", fmt.Sprintf("%q must match %s", dr.ID, driveIDPattern), nil)
		case seen[dr.ID] != "":
			v.add(field+".ID", fmt.Sprintf("%q is already used by %s", dr.ID, seen[dr.ID]), nil)
		default:
			seen[dr.ID] = field
		}
		v.file(field+".Path", dr.Path, true, !dr.ReadOnly)
	}
	if d.RootDrive.Path != "" {
		check("RootDrive", d.RootDrive)
	} else if d.RootDrive != (Drive{}) {
		v.add("RootDrive.Path", "required when RootDrive is set", nil)
	}
	for i, dr := range d.Drives {
		check(fmt.Sprintf("Drives[%d]", i), dr)
	}
}

// cmdline checks that the kernel command line, with what the VMM adds (the
// agent's token included), fits MaxCmdlineBytes. For QEMU that is the exact
// line its backend builds, with every parameter it may add, and it must fit
// QEMU's config file (qemu.MaxConfigCmdline, no double quote); Firecracker
// appends a virtio_mmio.device=… per device and the root= parameters.
func (v *validator) cmdline(d *Config) {
	var total int
	limit := MaxCmdlineBytes
	if d.VMM == QEMU {
		// The line goes to QEMU in its config file (qemu.WriteConfig).
		line := qemuCmdline(d, qemu.AccelTCG, qemuHost{tscKHz: 9_999_999}, true)
		total = len(line) + tokenParamLen
		limit = qemu.MaxConfigCmdline
		if strings.Contains(line, `"`) {
			v.add("BootArgs", "QEMU's config file cannot carry a double quote in the kernel command line", nil)
		}
	} else {
		const perDevice = len(" virtio_mmio.device=4K@0xd0001000:5")
		const rootArgs = len(" root=/dev/vda rw")
		devices := len(d.allDrives())
		if d.Network != nil {
			devices++
		}
		if d.Vsock != nil {
			devices++
		}
		total = len(d.BootArgs) + devices*perDevice + rootArgs + tokenParamLen
	}
	if total > limit {
		v.add("BootArgs", fmt.Sprintf("kernel command line would be %d bytes with the VMM's parameters; the limit is %d", total, limit), nil)
	}
}

func (v *validator) network(n *Network) {
	if n == nil {
		return
	}
	if n.Tap == "" {
		v.add("Network.Tap", "required", nil)
	} else if len(n.Tap) > unix.IFNAMSIZ-1 || strings.ContainsAny(n.Tap, "/ \t\n") {
		v.add("Network.Tap", fmt.Sprintf("%q is not a valid interface name", n.Tap), nil)
	} else if _, err := net.InterfaceByName(n.Tap); err != nil {
		// QEMU would create a temporary tap of that name, attached to
		// nothing; Firecracker fails later with a vaguer error.
		v.add("Network.Tap", fmt.Sprintf("no network device %q in this network namespace "+
			"(create it first: ip tuntap add dev %s mode tap user $USER)", n.Tap, n.Tap), ErrNoSuchDevice)
	}
	if n.MAC != "" {
		if err := checkMAC(n.MAC); err != nil {
			v.add("Network.MAC", "not usable", err)
		}
	}
}

func (v *validator) vsock(d *Config) {
	if d.Vsock == nil {
		return
	}
	if d.VMM == QEMU && d.Vsock.CID == 0 {
		// allocated at Start
	} else if d.Vsock.CID < 3 || d.Vsock.CID == ^uint32(0) {
		v.add("Vsock.CID", fmt.Sprintf("must be at least 3 and below 2^32-1, got %d", d.Vsock.CID), nil)
	}
	if p := d.Vsock.Path; p != "" {
		if l := len(p) + len("_4294967295"); l > maxUnixPath {
			v.add("Vsock.Path", fmt.Sprintf("%q is too long for a unix socket with a port suffix (%d > %d bytes)", p, l, maxUnixPath), nil)
		}
		if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
			v.add("Vsock.Path", fmt.Sprintf("directory of %q does not exist", p), err)
		}
	}
}

func (v *validator) runDir(dir string) {
	if err := privdir.Check(dir); errors.Is(err, privdir.ErrUnsafe) {
		v.add("RunDir", "refusing an unsafe run directory root", err)
	}
	if l := len(dir) + 1 + idLen + 1 + len(longestSocketName); l > maxUnixPath {
		v.add("RunDir", fmt.Sprintf("%q is too long: socket paths under it would be %d bytes (limit %d)", dir, l, maxUnixPath), nil)
	}
}

// hostMemoryMiB returns MemTotal from /proc/meminfo in MiB, or 0 if unknown.
func hostMemoryMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(fields[1])
			return kb / 1024
		}
	}
	return 0
}
