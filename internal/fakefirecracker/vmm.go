package main

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// The microVM states reported by GET /.
const (
	stateNotStarted = "Not started"
	stateRunning    = "Running"
	statePaused     = "Paused"
)

// vmm is the fake microVM: its configuration and state. mu serializes API
// requests, as Firecracker's single API thread does; methods whose names end
// in Locked expect it held.
type vmm struct {
	opts *options
	sw   *switches

	mu        sync.Mutex
	state     string
	machine   machineConfig
	boot      *bootSource
	drives    []*drive
	ifaces    []*networkInterface
	vsock     *vsockDevice
	logger    *logSink
	loggerCfg *loggerConfig
	metrics   *metricsConfig
	metricsF  *os.File

	gate runGate // open while the guest runs

	// machineSet records a PUT or PATCH /machine-config (it rules out a
	// snapshot load); guestStarted that the fake guest runs (snapshot.go).
	machineSet   bool
	guestStarted bool
}

func newVMM(opts *options, sw *switches) *vmm {
	return &vmm{
		opts:    opts,
		sw:      sw,
		state:   stateNotStarted,
		machine: defaultMachineConfig(),
		gate:    newRunGate(),
	}
}

// debug writes msg to the log at level Debug, from outside the API thread.
func (v *vmm) debug(msg string) {
	v.mu.Lock()
	lg := v.logger
	v.mu.Unlock()
	lg.debug(msg)
}

func ptr[T any](v T) *T { return &v }

func defaultMachineConfig() machineConfig {
	return machineConfig{
		VcpuCount:       ptr[uint8](1),
		MemSizeMib:      ptr[uint64](128),
		Smt:             ptr(false),
		TrackDirtyPages: ptr(false),
		HugePages:       ptr("None"),
	}
}

func (v *vmm) started() bool { return v.state != stateNotStarted }

func (v *vmm) requirePreBoot() error {
	if v.started() {
		return &fault{msg: msgNotSupportedPostBoot}
	}
	return nil
}

func (v *vmm) requirePostBoot() error {
	if !v.started() {
		return &fault{msg: msgNotSupportedPreBoot}
	}
	return nil
}

// checkMachineConfig validates the fields a PUT or PATCH may carry.
func checkMachineConfig(mc *machineConfig) error {
	if err := checkEnum("cpu_template", mc.CPUTemplate, "C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None"); err != nil {
		return err
	}
	return checkEnum("huge_pages", mc.HugePages, "None", "2M")
}

// putMachineConfigLocked replaces (PUT) or updates (PATCH) the machine
// configuration; the whole update fails if any value is bad.
func (v *vmm) putMachineConfigLocked(in *machineConfig, patch bool) error {
	if err := checkMachineConfig(in); err != nil {
		return err
	}
	var mc machineConfig
	if patch {
		if *in == (machineConfig{}) {
			return faultf("Empty PATCH request.")
		}
		mc = v.machine
		if in.VcpuCount != nil {
			mc.VcpuCount = in.VcpuCount
		}
		if in.MemSizeMib != nil {
			mc.MemSizeMib = in.MemSizeMib
		}
		if in.Smt != nil {
			mc.Smt = in.Smt
		}
		if in.CPUTemplate != nil {
			mc.CPUTemplate = in.CPUTemplate
		}
		if in.TrackDirtyPages != nil {
			mc.TrackDirtyPages = in.TrackDirtyPages
		}
		if in.HugePages != nil {
			mc.HugePages = in.HugePages
		}
	} else {
		if err := require(field("mem_size_mib", in.MemSizeMib), field("vcpu_count", in.VcpuCount)); err != nil {
			return err
		}
		mc = defaultMachineConfig()
		mc.VcpuCount, mc.MemSizeMib = in.VcpuCount, in.MemSizeMib
		if in.Smt != nil {
			mc.Smt = in.Smt
		}
		mc.CPUTemplate = in.CPUTemplate
		if in.TrackDirtyPages != nil {
			mc.TrackDirtyPages = in.TrackDirtyPages
		}
		if in.HugePages != nil {
			mc.HugePages = in.HugePages
		}
	}
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	n := *mc.VcpuCount
	if n < 1 || n > 32 || (*mc.Smt && n > 1 && n%2 == 1) {
		return faultf("The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.")
	}
	if *mc.MemSizeMib == 0 {
		return faultf("The memory size (MiB) is invalid.")
	}
	if *mc.HugePages == "2M" && *mc.MemSizeMib%2 != 0 {
		return faultf("The memory size (MiB) must be a multiple of the huge page size (2 MiB) when huge pages are used.")
	}
	if mc.CPUTemplate != nil && *mc.CPUTemplate == "None" {
		mc.CPUTemplate = nil
	}
	v.machine = mc
	v.machineSet = true
	return nil
}

// openCheck opens path as Firecracker would and closes it again.
func openCheck(path string, flag int) error {
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (v *vmm) putBootSourceLocked(in *bootSource) error {
	if err := require(field("kernel_image_path", in.KernelImagePath)); err != nil {
		return err
	}
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	if err := openCheck(*in.KernelImagePath, os.O_RDONLY); err != nil {
		return faultf("The kernel file cannot be opened: %v", err)
	}
	if in.InitrdPath != nil {
		if err := openCheck(*in.InitrdPath, os.O_RDONLY); err != nil {
			return faultf("The initrd file cannot be opened due to invalid path or invalid permissions. %v", err)
		}
	}
	v.boot = in
	return nil
}

func checkDrive(in *drive) error {
	if err := require(field("drive_id", in.DriveID), field("is_root_device", in.IsRootDevice)); err != nil {
		return err
	}
	if err := checkEnum("cache_type", in.CacheType, "Unsafe", "Writeback"); err != nil {
		return err
	}
	if err := checkEnum("io_engine", in.IoEngine, "Sync", "Async"); err != nil {
		return err
	}
	return checkRateLimiter(in.RateLimiter)
}

func (v *vmm) putDriveLocked(in *drive) error {
	if err := checkID(*in.DriveID); err != nil {
		return err
	}
	if in.Socket != nil {
		if in.PathOnHost != nil || in.IsReadOnly != nil || in.IoEngine != nil || in.RateLimiter != nil {
			return faultf("Unable to create the block device: a vhost-user-block drive (socket) must not set path_on_host, is_read_only, io_engine or rate_limiter")
		}
		return faultf("fake firecracker: vhost-user-block drives (socket) are not implemented by this fake")
	}
	if in.PathOnHost == nil || in.IsReadOnly == nil {
		return faultf("Unable to create the block device: virtio-block drives need both path_on_host and is_read_only")
	}
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	if *in.IsRootDevice {
		for _, d := range v.drives {
			if *d.IsRootDevice && *d.DriveID != *in.DriveID {
				return faultf("A root block device already exists!")
			}
		}
	}
	flag := os.O_RDWR
	if *in.IsReadOnly {
		flag = os.O_RDONLY
	}
	if err := openCheck(*in.PathOnHost, flag); err != nil {
		return faultf("Unable to create the block device: cannot open the backing file %s: %v", *in.PathOnHost, err)
	}
	d := *in
	if d.CacheType == nil {
		d.CacheType = ptr("Unsafe")
	}
	if d.IoEngine == nil {
		d.IoEngine = ptr("Sync")
	}
	for i, old := range v.drives {
		if *old.DriveID == *d.DriveID {
			v.drives[i] = &d
			return nil
		}
	}
	// Firecracker keeps the root device first.
	if *d.IsRootDevice {
		v.drives = append([]*drive{&d}, v.drives...)
	} else {
		v.drives = append(v.drives, &d)
	}
	return nil
}

func (v *vmm) patchDriveLocked(in *partialDrive) error {
	if err := v.requirePostBoot(); err != nil {
		return err
	}
	var d *drive
	for _, old := range v.drives {
		if *old.DriveID == *in.DriveID {
			d = old
		}
	}
	if d == nil {
		return faultf("Invalid block device ID!")
	}
	if in.PathOnHost != nil {
		flag := os.O_RDWR
		if *d.IsReadOnly {
			flag = os.O_RDONLY
		}
		if err := openCheck(*in.PathOnHost, flag); err != nil {
			return faultf("Unable to patch the block device: cannot open the backing file %s: %v", *in.PathOnHost, err)
		}
		d.PathOnHost = in.PathOnHost
	}
	if in.RateLimiter != nil {
		d.RateLimiter = in.RateLimiter
	}
	return nil
}

func checkMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < 17; i++ {
		c := s[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func (v *vmm) putNetworkInterfaceLocked(in *networkInterface) error {
	if err := checkID(*in.IfaceID); err != nil {
		return err
	}
	if in.GuestMAC != nil && !checkMAC(*in.GuestMAC) {
		return deserializeFault(fmt.Errorf("invalid MAC address %q", *in.GuestMAC))
	}
	if in.MTU != nil && *in.MTU < 68 {
		return faultf("Invalid MTU %d: the MTU must be between 68 and 65535", *in.MTU)
	}
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	for _, n := range v.ifaces {
		if *n.IfaceID == *in.IfaceID {
			continue
		}
		if *n.HostDevName == *in.HostDevName {
			return faultf("The host device name %s is already in use.", *in.HostDevName)
		}
		if n.GuestMAC != nil && in.GuestMAC != nil && *n.GuestMAC == *in.GuestMAC {
			return faultf("The MAC address is already in use: %s", *in.GuestMAC)
		}
	}
	name := *in.HostDevName
	if name == "" || len(name) >= 16 || containsSlash(name) {
		return faultf("Could not create the network device: Open tap device failed: Invalid interface name %q", name)
	}
	if _, err := os.Stat("/sys/class/net/" + name); err != nil {
		return faultf("Could not create the network device: Open tap device failed: Error while creating ifreq structure: No such device (os error 19). Invalid TUN/TAP Backend provided by %s. Check our documentation on preparing your tap device.", name)
	}
	n := *in
	for i, old := range v.ifaces {
		if *old.IfaceID == *n.IfaceID {
			v.ifaces[i] = &n
			return nil
		}
	}
	v.ifaces = append(v.ifaces, &n)
	return nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}

func (v *vmm) patchNetworkInterfaceLocked(in *partialNetworkInterface) error {
	if err := v.requirePostBoot(); err != nil {
		return err
	}
	for _, n := range v.ifaces {
		if *n.IfaceID == *in.IfaceID {
			if in.RxRateLimiter != nil {
				n.RxRateLimiter = in.RxRateLimiter
			}
			if in.TxRateLimiter != nil {
				n.TxRateLimiter = in.TxRateLimiter
			}
			return nil
		}
	}
	return faultf("Invalid network interface ID - not found.")
}

func (v *vmm) putVsockLocked(in *vsockConfig) error {
	if err := require(field("guest_cid", in.GuestCID), field("uds_path", in.UDSPath)); err != nil {
		return err
	}
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	if *in.GuestCID < 3 {
		return faultf("Cannot create backend for vsock device: invalid guest CID %d: the CID must be at least 3", *in.GuestCID)
	}
	dev, err := newVsockDevice(v, *in)
	if err != nil {
		return err
	}
	if v.vsock != nil {
		v.vsock.close()
	}
	v.vsock = dev
	return nil
}

func (v *vmm) putLoggerLocked(in *loggerConfig) error {
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	level := "Info"
	if in.Level != nil {
		if _, ok := parseLevel(*in.Level); !ok {
			return deserializeFault(fmt.Errorf("unknown variant `%s`, expected one of `Off`, `Trace`, `Debug`, `Info`, `Warn`, `Warning`, `Error`", *in.Level))
		}
		level = *in.Level
	}
	path := ""
	if in.LogPath != nil {
		path = *in.LogPath
	}
	sink, err := openLogSink(path, level, in.ShowLevel != nil && *in.ShowLevel, in.ShowLogOrigin != nil && *in.ShowLogOrigin, v.opts.id)
	if err != nil {
		return faultf("Logger: Failed to open target file: %v", err)
	}
	if v.logger != nil {
		v.logger.close()
	}
	v.logger = sink
	cfg := *in
	v.loggerCfg = &cfg
	v.logger.info("Logger configured")
	return nil
}

func (v *vmm) putMetricsLocked(in *metricsConfig) error {
	if err := require(field("metrics_path", in.MetricsPath)); err != nil {
		return err
	}
	if err := v.requirePreBoot(); err != nil {
		return err
	}
	if v.metricsF != nil {
		return faultf("Reinitialization of metrics not allowed.")
	}
	f, err := os.OpenFile(*in.MetricsPath, os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK, 0)
	if err != nil {
		return faultf("Cannot initialize the metrics system due to: Failed to open target file: %v", err)
	}
	v.metrics, v.metricsF = in, f
	return nil
}

func (v *vmm) flushMetricsLocked() error {
	if v.metricsF == nil {
		return nil
	}
	_, err := fmt.Fprintf(v.metricsF, "{\"utc_timestamp_ms\":%d}\n", time.Now().UnixMilli())
	if err != nil {
		return faultf("Failed to write metrics: %v", err)
	}
	return nil
}

func (v *vmm) vmConfigLocked() fullVMConfig {
	mc := v.machine
	cfg := fullVMConfig{
		Drives:            v.drives,
		BootSource:        v.boot,
		Logger:            v.loggerCfg,
		MachineConfig:     &mc,
		Metrics:           v.metrics,
		NetworkInterfaces: v.ifaces,
		Pmem:              []any{},
	}
	if cfg.Drives == nil {
		cfg.Drives = []*drive{}
	}
	if cfg.NetworkInterfaces == nil {
		cfg.NetworkInterfaces = []*networkInterface{}
	}
	if v.vsock != nil {
		c := v.vsock.cfg
		cfg.Vsock = &c
	}
	return cfg
}
