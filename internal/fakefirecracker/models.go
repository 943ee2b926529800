package main

import "encoding/json"

// The request and response bodies of the Firecracker API. Pointer fields let
// the fake tell a missing field from a zero value; the same types, with their
// defaults filled in, are what GET /vm/config reports.

type tokenBucket struct {
	Size         *uint64 `json:"size"`
	OneTimeBurst *uint64 `json:"one_time_burst,omitempty"`
	RefillTime   *uint64 `json:"refill_time"`
}

type rateLimiter struct {
	Bandwidth *tokenBucket `json:"bandwidth,omitempty"`
	Ops       *tokenBucket `json:"ops,omitempty"`
}

type machineConfig struct {
	VcpuCount       *uint8  `json:"vcpu_count"`
	MemSizeMib      *uint64 `json:"mem_size_mib"`
	Smt             *bool   `json:"smt"`
	CPUTemplate     *string `json:"cpu_template,omitempty"`
	TrackDirtyPages *bool   `json:"track_dirty_pages"`
	HugePages       *string `json:"huge_pages"`
}

type bootSource struct {
	KernelImagePath *string `json:"kernel_image_path"`
	InitrdPath      *string `json:"initrd_path,omitempty"`
	BootArgs        *string `json:"boot_args,omitempty"`
}

type drive struct {
	DriveID      *string      `json:"drive_id"`
	PartUUID     *string      `json:"partuuid"`
	IsRootDevice *bool        `json:"is_root_device"`
	CacheType    *string      `json:"cache_type"`
	IsReadOnly   *bool        `json:"is_read_only"`
	PathOnHost   *string      `json:"path_on_host"`
	RateLimiter  *rateLimiter `json:"rate_limiter"`
	IoEngine     *string      `json:"io_engine"`
	Socket       *string      `json:"socket"`
}

type partialDrive struct {
	DriveID     *string      `json:"drive_id"`
	PathOnHost  *string      `json:"path_on_host"`
	RateLimiter *rateLimiter `json:"rate_limiter"`
}

type networkInterface struct {
	IfaceID       *string      `json:"iface_id"`
	HostDevName   *string      `json:"host_dev_name"`
	GuestMAC      *string      `json:"guest_mac"`
	MTU           *uint16      `json:"mtu,omitempty"`
	RxRateLimiter *rateLimiter `json:"rx_rate_limiter"`
	TxRateLimiter *rateLimiter `json:"tx_rate_limiter"`
}

type partialNetworkInterface struct {
	IfaceID       *string      `json:"iface_id"`
	RxRateLimiter *rateLimiter `json:"rx_rate_limiter"`
	TxRateLimiter *rateLimiter `json:"tx_rate_limiter"`
}

type vsockConfig struct {
	GuestCID *uint32 `json:"guest_cid"`
	UDSPath  *string `json:"uds_path"`
	VsockID  *string `json:"vsock_id,omitempty"`
}

type loggerConfig struct {
	Level         *string `json:"level,omitempty"`
	LogPath       *string `json:"log_path,omitempty"`
	ShowLevel     *bool   `json:"show_level,omitempty"`
	ShowLogOrigin *bool   `json:"show_log_origin,omitempty"`
	Module        *string `json:"module,omitempty"`
}

type metricsConfig struct {
	MetricsPath *string `json:"metrics_path"`
}

type instanceActionInfo struct {
	ActionType *string `json:"action_type"`
}

type vmState struct {
	State *string `json:"state"`
}

type instanceInfo struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	VmmVersion string `json:"vmm_version"`
	AppName    string `json:"app_name"`
}

type firecrackerVersion struct {
	FirecrackerVersion string `json:"firecracker_version"`
}

// fullVMConfig is GET /vm/config's answer.
type fullVMConfig struct {
	Balloon           any                 `json:"balloon"`
	Drives            []*drive            `json:"drives"`
	BootSource        *bootSource         `json:"boot-source"`
	CPUConfig         any                 `json:"cpu-config"`
	Logger            *loggerConfig       `json:"logger"`
	MachineConfig     *machineConfig      `json:"machine-config"`
	Metrics           *metricsConfig      `json:"metrics"`
	MemoryHotplug     any                 `json:"memory-hotplug"`
	MmdsConfig        any                 `json:"mmds-config"`
	NetworkInterfaces []*networkInterface `json:"network-interfaces"`
	Pmem              []any               `json:"pmem"`
	Vsock             *vsockConfig        `json:"vsock"`
	Entropy           any                 `json:"entropy"`
}

// configFile is the JSON given with --config-file. The raw members are parts
// of Firecracker's configuration that the fake does not implement; they must
// be absent or null.
type configFile struct {
	BootSource        *bootSource        `json:"boot-source"`
	Drives            []drive            `json:"drives"`
	MachineConfig     *machineConfig     `json:"machine-config"`
	NetworkInterfaces []networkInterface `json:"network-interfaces"`
	Vsock             *vsockConfig       `json:"vsock"`
	Logger            *loggerConfig      `json:"logger"`
	Metrics           *metricsConfig     `json:"metrics"`
	Balloon           json.RawMessage    `json:"balloon"`
	CPUConfig         json.RawMessage    `json:"cpu-config"`
	MmdsConfig        json.RawMessage    `json:"mmds-config"`
	Entropy           json.RawMessage    `json:"entropy"`
	Pmem              json.RawMessage    `json:"pmem"`
	Serial            json.RawMessage    `json:"serial"`
	MemoryHotplug     json.RawMessage    `json:"memory-hotplug"`
}
