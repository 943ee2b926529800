package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// BinaryName is the QEMU executable petty runs.
const BinaryName = "qemu-system-x86_64"

// ErrNotFound is returned (wrapped) by FindBinary when QEMU is not installed.
var ErrNotFound = errors.New("qemu: " + BinaryName + " not found in $PATH (apt-get install qemu-system-x86)")

// Host paths probed by this package; variables so that tests can point them
// elsewhere.
var (
	kvmDevice        = "/dev/kvm"
	kvmPVMModule     = "/sys/module/kvm_pvm"
	vhostVsockDevice = "/dev/vhost-vsock"
	vhostNetDevice   = "/dev/vhost-net"
	cpuinfoPath      = "/proc/cpuinfo"
	tscFreqPath      = "/sys/devices/system/cpu/cpu0/tsc_freq_khz"
)

// FindBinary returns the path of qemu-system-x86_64 in $PATH.
func FindBinary() (string, error) {
	p, err := exec.LookPath(BinaryName)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return p, nil
}

var versionPattern = regexp.MustCompile(`version ([0-9]+\.[0-9]+(?:\.[0-9]+)?)`)

// Version runs "bin --version" and returns QEMU's version number, e.g.
// "7.2.19".
func Version(bin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("qemu: %s --version: %w", bin, err)
	}
	m := versionPattern.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("qemu: %s --version: no version in %.100q", bin, out)
	}
	return string(m[1]), nil
}

// kvmAPIVersion is the only KVM API version Linux has ever reported.
const kvmAPIVersion = 12

// kvmGetAPIVersion is the KVM_GET_API_VERSION ioctl, _IO(0xAE, 0x00).
const kvmGetAPIVersion = 0xAE00

// KVMUsable reports whether QEMU can run guests under KVM here, and why not
// when it cannot: /dev/kvm must open read-write and report the stable API,
// and must not be the nested PVM flavour (kvm_pvm), on which stock guest
// kernels hang.
func KVMUsable() (bool, string) {
	if _, err := os.Stat(kvmPVMModule); err == nil {
		return false, "nested PVM KVM (kvm_pvm loaded): stock guest kernels hang; using TCG"
	}
	f, err := os.OpenFile(kvmDevice, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Sprintf("cannot open %s: %v; using TCG", kvmDevice, err)
	}
	defer f.Close()
	v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
	if err != nil {
		return false, fmt.Sprintf("%s: KVM_GET_API_VERSION: %v; using TCG", kvmDevice, err)
	}
	if v != kvmAPIVersion {
		return false, fmt.Sprintf("%s: KVM API version %d, want %d; using TCG", kvmDevice, v, kvmAPIVersion)
	}
	return true, ""
}

// VhostVsockAvailable reports whether /dev/vhost-vsock exists and can be
// opened read-write, which vhost-vsock-device needs.
func VhostVsockAvailable() bool { return charDeviceUsable(vhostVsockDevice) }

// VhostNetAvailable reports whether /dev/vhost-net exists and can be opened
// read-write, which a tap netdev with vhost=on needs.
func VhostNetAvailable() bool { return charDeviceUsable(vhostNetDevice) }

func charDeviceUsable(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	return unix.Access(path, unix.R_OK|unix.W_OK) == nil
}

// HostTSCkHz returns the host's TSC frequency in kHz, or 0 when unknown:
// the kernel's tsc_freq_khz where it exports one, else "cpu MHz" from
// /proc/cpuinfo. Under TCG a guest's rdtsc counts at the host's rate, and
// passing this as tsc_early_khz spares the guest a calibration that
// microvm, which has no PIT, can get stuck in.
func HostTSCkHz() int {
	if b, err := os.ReadFile(tscFreqPath); err == nil {
		if khz, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && khz > 0 {
			return khz
		}
	}
	f, err := os.Open(cpuinfoPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil && mhz > 0 {
				return int(math.Round(mhz * 1000))
			}
			return 0
		}
	}
	return 0
}
