package firecracker

import "encoding/json"

// Config is the JSON document read by `firecracker --config-file`: the whole
// pre-boot configuration, with which Firecracker boots the guest at start.
type Config struct {
	// BootSource is the kernel and command line.
	BootSource BootSource `json:"boot-source"`
	// Drives are the block devices.
	Drives []Drive `json:"drives"`
	// MachineConfig is the vCPU and memory configuration.
	MachineConfig MachineConfiguration `json:"machine-config"`
	// NetworkInterfaces are the virtio-net devices.
	NetworkInterfaces []NetworkInterface `json:"network-interfaces,omitempty"`
	// Vsock is the vsock device; nil means none.
	Vsock *Vsock `json:"vsock,omitempty"`
	// Logger configures the log; nil means Firecracker's default.
	Logger *Logger `json:"logger,omitempty"`
}

// MarshalJSON encodes c, writing nil Drives as [] because Firecracker
// requires the "drives" array in a config file.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config // plain has no MarshalJSON method
	p := plain(c)
	if p.Drives == nil {
		p.Drives = []Drive{}
	}
	return json.Marshal(p)
}
