package vsock

import "strconv"

// Addr is one end of a hybrid vsock connection: a vsock port reached through
// the unix socket Path of a Firecracker vsock device.
type Addr struct {
	// Path is the device's uds_path.
	Path string
	// Port is the vsock port.
	Port uint32
}

// Network returns "vsock".
func (a *Addr) Network() string { return "vsock" }

// String returns "<path>:<port>".
func (a *Addr) String() string { return a.Path + ":" + strconv.FormatUint(uint64(a.Port), 10) }
