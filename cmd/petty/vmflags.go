package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// vmFlags are the flags that describe a VM (petty run).
type vmFlags struct {
	vmm            string
	kernel         string
	initrd         string
	rootfs         string
	drives         []string
	vcpus          int
	memory         int
	tap            string
	mac            string
	firecrackerBin string
	bootTimeout    time.Duration
	stopTimeout    time.Duration
	image          string // --image NAME|PATH; "" is the default image
	diskSize       string // --disk-size of the scratch disk
	// hostname is the guest's host name (petty.hostname=); "" leaves the
	// guest's default.
	hostname string
}

func (f *vmFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.vmm, "vmm", "auto", "VMM: auto, firecracker or qemu (auto: Firecracker when it is found and KVM is usable)")
	fs.StringVar(&f.image, "image", "", "guest image: a NAME of the image store (see petty image ls; "+image.MinimalImage+" is the busybox initramfs) or the PATH of an image directory (default \""+image.DefaultImage+"\", built on first use)")
	fs.StringVar(&f.diskSize, "disk-size", defaultDiskSize, "size of the VM's writable layer above the image (a sparse scratch disk, gone with the VM)")
	fs.StringVar(&f.kernel, "kernel", "", "guest kernel, an uncompressed vmlinux (instead of --image)")
	fs.StringVar(&f.initrd, "initrd", "", "guest initramfs")
	fs.StringVar(&f.rootfs, "rootfs", "", "root file system image (read-write)")
	fs.StringArrayVar(&f.drives, "drive", nil, "extra block device PATH[:ro] (repeatable)")
	fs.IntVar(&f.vcpus, "vcpus", vm.DefaultVCPUs, "number of vCPUs")
	fs.IntVar(&f.memory, "memory", vm.DefaultMemoryMiB, "guest memory in MiB")
	fs.StringVar(&f.tap, "tap", "", "attach a virtio-net device to this existing tap device")
	fs.StringVar(&f.mac, "mac", "", "the guest's MAC address, xx:xx:xx:xx:xx:xx, unicast (default: a random locally administered one; needs --tap)")
	fs.StringVar(&f.firecrackerBin, "firecracker-bin", "", "firecracker executable (default $"+vm.FirecrackerBinEnv+", then $PATH)")
	fs.DurationVar(&f.bootTimeout, "boot-timeout", 60*time.Second, "how long to wait for the VM to boot and its agent to answer")
	fs.DurationVar(&f.stopTimeout, "stop-timeout", 10*time.Second, "how long to wait for a graceful stop before killing the VMM")
}

// check validates the flags that vm.Config.Validate cannot judge.
func (f *vmFlags) check() error {
	switch f.vmm {
	case "auto", string(vm.Firecracker), string(vm.QEMU):
	default:
		return usagef("--vmm %q: want auto, firecracker or qemu", f.vmm)
	}
	if f.kernel == "" && (f.initrd != "" || f.rootfs != "") {
		return usagef("--initrd and --rootfs need --kernel (without --kernel petty uses its built-in guest image)")
	}
	if f.kernel != "" && f.image != "" {
		return usagef("--image and --kernel exclude each other")
	}
	if n, err := parseSize(f.diskSize); err != nil || n < image.MinScratchSize {
		return usagef("--disk-size %q: want a size of at least 16MiB, e.g. 2GiB", f.diskSize)
	}
	if f.mac != "" && f.tap == "" {
		return usagef("--mac needs --tap")
	}
	if f.bootTimeout <= 0 {
		return usagef("--boot-timeout must be positive")
	}
	if f.stopTimeout <= 0 {
		return usagef("--stop-timeout must be positive")
	}
	for _, d := range f.drives {
		if _, err := parseDrive(d); err != nil {
			return err
		}
	}
	return nil
}

// parseDrive parses --drive PATH[:ro].
func parseDrive(s string) (vm.Drive, error) {
	path, ro := s, false
	if p, ok := strings.CutSuffix(s, ":ro"); ok {
		path, ro = p, true
	} else if p, ok := strings.CutSuffix(s, ":rw"); ok {
		path = p
	}
	if path == "" {
		return vm.Drive{}, usagef("--drive %q: want PATH or PATH:ro", s)
	}
	return vm.Drive{Path: path, ReadOnly: ro}, nil
}

// config turns the flags into a vm.Config for VMM v and the guest image
// (kernel, initrd, rootfs) chosen for it. File paths are made absolute: the
// VMM runs in the VM's run directory, not in petty's working directory.
func (f *vmFlags) config(v vm.VMM, kernel, initrd, rootfs string) (vm.Config, error) {
	fcBin := f.firecrackerBin
	if strings.ContainsRune(fcBin, filepath.Separator) {
		fcBin = absPath(fcBin) // a bare name is looked up in $PATH
	}
	cfg := vm.Config{
		VMM:            v,
		VCPUs:          f.vcpus,
		MemoryMiB:      f.memory,
		Kernel:         absPath(kernel),
		Initrd:         absPath(initrd),
		FirecrackerBin: fcBin,
		Vsock:          &vm.Vsock{},
	}
	if rootfs != "" {
		cfg.RootDrive = vm.Drive{Path: absPath(rootfs)}
	}
	for _, s := range f.drives {
		d, err := parseDrive(s)
		if err != nil {
			return vm.Config{}, err
		}
		d.Path = absPath(d.Path)
		cfg.Drives = append(cfg.Drives, d)
	}
	if f.tap != "" {
		cfg.Network = &vm.Network{Tap: f.tap, MAC: f.mac}
	}
	if f.vcpus < 1 {
		return vm.Config{}, usagef("--vcpus must be at least 1, got %d", f.vcpus)
	}
	if f.memory < 1 {
		return vm.Config{}, usagef("--memory must be positive (MiB), got %d", f.memory)
	}
	return cfg, nil
}

// absPath returns path made absolute against the working directory. It
// returns "" for "", and path unchanged when filepath.Abs fails.
func absPath(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// describe is the short "vmm, accel" label of progress lines.
func describe(v vm.VMM, accel string) string {
	if accel == "" {
		return string(v)
	}
	return fmt.Sprintf("%s, %s", v, accel)
}
