package firecracker

// MachineConfiguration is the vCPU, memory, SMT and huge page configuration of
// the guest (PUT/GET /machine-config).
type MachineConfiguration struct {
	// VcpuCount is the number of vCPUs: 1 or an even number, at most 32.
	VcpuCount int `json:"vcpu_count"`
	// MemSizeMib is the guest memory size in MiB.
	MemSizeMib int `json:"mem_size_mib"`
	// Smt enables simultaneous multithreading (x86 only); nil means false.
	Smt *bool `json:"smt,omitempty"`
	// TrackDirtyPages enables dirty page tracking for diff snapshots; nil
	// means false.
	TrackDirtyPages *bool `json:"track_dirty_pages,omitempty"`
	// HugePages selects the huge pages backing guest memory: HugePagesNone
	// or HugePages2M; empty means none.
	HugePages string `json:"huge_pages,omitempty"`
	// CPUTemplate is a deprecated static CPU template, e.g. "T2"; empty
	// means none.
	CPUTemplate string `json:"cpu_template,omitempty"`
}

// Values of MachineConfiguration.HugePages.
const (
	// HugePagesNone backs guest memory with regular pages.
	HugePagesNone = "None"
	// HugePages2M backs guest memory with 2 MiB hugetlbfs pages.
	HugePages2M = "2M"
)

// BootSource is the kernel, initrd and command line the guest boots with
// (PUT /boot-source).
type BootSource struct {
	// KernelImagePath is the host path of the uncompressed kernel image.
	KernelImagePath string `json:"kernel_image_path"`
	// BootArgs is the kernel command line; empty means Firecracker's default.
	BootArgs string `json:"boot_args,omitempty"`
	// InitrdPath is the host path of the initrd; empty means none.
	InitrdPath string `json:"initrd_path,omitempty"`
}

// Drive is a block device of the guest (PUT /drives/{drive_id}).
type Drive struct {
	// DriveID names the drive; it is also the last element of the path.
	DriveID string `json:"drive_id"`
	// PathOnHost is the host path of the backing file (virtio-block).
	PathOnHost string `json:"path_on_host,omitempty"`
	// IsRootDevice makes this drive the guest's root device.
	IsRootDevice bool `json:"is_root_device"`
	// IsReadOnly makes the drive read-only (virtio-block); nil omits it.
	IsReadOnly *bool `json:"is_read_only,omitempty"`
	// CacheType is CacheTypeUnsafe (default) or CacheTypeWriteback.
	CacheType string `json:"cache_type,omitempty"`
	// IoEngine is IoEngineSync (default) or IoEngineAsync.
	IoEngine string `json:"io_engine,omitempty"`
	// Partuuid is the unique id of the boot partition; used only when
	// IsRootDevice is true.
	Partuuid string `json:"partuuid,omitempty"`
	// RateLimiter limits the drive's bandwidth and operations; nil means
	// unlimited.
	RateLimiter *RateLimiter `json:"rate_limiter,omitempty"`
	// Socket is the vhost-user-block backend's socket path; set it instead
	// of PathOnHost and IsReadOnly for vhost-user-block.
	Socket string `json:"socket,omitempty"`
}

// Values of Drive.CacheType.
const (
	// CacheTypeUnsafe does not flush guest writes to the host disk.
	CacheTypeUnsafe = "Unsafe"
	// CacheTypeWriteback flushes on the guest's flush requests.
	CacheTypeWriteback = "Writeback"
)

// Values of Drive.IoEngine.
const (
	// IoEngineSync performs blocking I/O.
	IoEngineSync = "Sync"
	// IoEngineAsync uses io_uring (host kernels newer than 5.10.51).
	IoEngineAsync = "Async"
)

// PartialDrive updates a drive after boot (PATCH /drives/{drive_id}).
type PartialDrive struct {
	// DriveID names the drive to update.
	DriveID string `json:"drive_id"`
	// PathOnHost, when set, replaces the backing file.
	PathOnHost string `json:"path_on_host,omitempty"`
	// RateLimiter, when set, replaces the rate limiter.
	RateLimiter *RateLimiter `json:"rate_limiter,omitempty"`
}

// RateLimiter limits I/O with independent bytes/s and ops/s token buckets.
type RateLimiter struct {
	// Bandwidth is a token bucket with bytes as tokens; nil means unlimited.
	Bandwidth *TokenBucket `json:"bandwidth,omitempty"`
	// Ops is a token bucket with operations as tokens; nil means unlimited.
	Ops *TokenBucket `json:"ops,omitempty"`
}

// TokenBucket is a token bucket of Size tokens refilled every RefillTime
// milliseconds, with an optional initial burst.
type TokenBucket struct {
	// OneTimeBurst is the initial extra budget; nil means none.
	OneTimeBurst *int64 `json:"one_time_burst,omitempty"`
	// RefillTime is the number of milliseconds it takes to refill the bucket.
	RefillTime int64 `json:"refill_time"`
	// Size is the number of tokens the bucket holds.
	Size int64 `json:"size"`
}

// NetworkInterface is a virtio-net device of the guest backed by a host tap
// device (PUT /network-interfaces/{iface_id}).
type NetworkInterface struct {
	// IfaceID names the interface; it is also the last element of the path.
	IfaceID string `json:"iface_id"`
	// HostDevName is the name of the host tap device.
	HostDevName string `json:"host_dev_name"`
	// GuestMac is the guest's MAC address, e.g. "06:00:ac:10:00:02"; empty
	// lets Firecracker choose.
	GuestMac string `json:"guest_mac,omitempty"`
	// MTU is advertised to the guest when non-zero (68 to 65535).
	MTU int `json:"mtu,omitempty"`
	// RxRateLimiter limits received traffic; nil means unlimited.
	RxRateLimiter *RateLimiter `json:"rx_rate_limiter,omitempty"`
	// TxRateLimiter limits transmitted traffic; nil means unlimited.
	TxRateLimiter *RateLimiter `json:"tx_rate_limiter,omitempty"`
}

// Vsock is the guest's virtio-vsock device, proxied on the host through unix
// sockets (PUT /vsock). See package vsock for connecting through it.
type Vsock struct {
	// GuestCID is the guest's context id, at least 3.
	GuestCID uint32 `json:"guest_cid"`
	// UdsPath is the unix socket Firecracker listens on for host-initiated
	// connections; guest-initiated ones go to UdsPath + "_<port>".
	UdsPath string `json:"uds_path"`
}

// Logger configures Firecracker's human readable log (PUT /logger).
type Logger struct {
	// LogPath is the file or named pipe the log is written to.
	LogPath string `json:"log_path,omitempty"`
	// Level is one of the LogLevel constants (case-insensitive); empty means
	// Info.
	Level string `json:"level,omitempty"`
	// ShowLevel adds the level to each line.
	ShowLevel bool `json:"show_level,omitempty"`
	// ShowLogOrigin adds the file and line of the origin to each line.
	ShowLogOrigin bool `json:"show_log_origin,omitempty"`
	// Module keeps only the messages of this module path, e.g.
	// "api_server::request"; empty keeps all.
	Module string `json:"module,omitempty"`
}

// Values of Logger.Level.
const (
	LogLevelError   = "Error"   // errors only
	LogLevelWarning = "Warning" // warnings and errors
	LogLevelInfo    = "Info"    // the default
	LogLevelDebug   = "Debug"   // debug messages and above
	LogLevelTrace   = "Trace"   // everything
	LogLevelOff     = "Off"     // nothing
)

// InstanceInfo describes the Firecracker instance (GET /).
type InstanceInfo struct {
	// AppName is the application name, "Firecracker".
	AppName string `json:"app_name"`
	// ID is the instance id given with --id.
	ID string `json:"id"`
	// State is one of the InstanceState constants.
	State string `json:"state"`
	// VmmVersion is the Firecracker build version.
	VmmVersion string `json:"vmm_version"`
}

// Values of InstanceInfo.State.
const (
	InstanceStateNotStarted = "Not started" // InstanceStart was not called yet
	InstanceStateRunning    = "Running"     // the guest runs
	InstanceStatePaused     = "Paused"      // the guest is paused
)

// VMState is the desired running state of the microVM (PATCH /vm).
type VMState string

// Values of VMState.
const (
	// VMStatePaused pauses the microVM.
	VMStatePaused VMState = "Paused"
	// VMStateResumed resumes a paused microVM.
	VMStateResumed VMState = "Resumed"
)
