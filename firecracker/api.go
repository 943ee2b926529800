package firecracker

import (
	"context"
	"net/http"
)

// PutMachineConfig sets the vCPU and memory configuration (PUT
// /machine-config). Pre-boot only.
func (c *Client) PutMachineConfig(ctx context.Context, mc MachineConfiguration) error {
	return c.do(ctx, http.MethodPut, "/machine-config", mc, nil)
}

// GetMachineConfig returns the vCPU and memory configuration (GET
// /machine-config).
func (c *Client) GetMachineConfig(ctx context.Context) (MachineConfiguration, error) {
	var mc MachineConfiguration
	err := c.do(ctx, http.MethodGet, "/machine-config", nil, &mc)
	return mc, err
}

// PutBootSource sets the kernel, initrd and command line (PUT /boot-source).
// Pre-boot only.
func (c *Client) PutBootSource(ctx context.Context, b BootSource) error {
	return c.do(ctx, http.MethodPut, "/boot-source", b, nil)
}

// PutDrive creates or updates the drive d.DriveID (PUT /drives/{drive_id}).
// Pre-boot only.
func (c *Client) PutDrive(ctx context.Context, d Drive) error {
	return c.do(ctx, http.MethodPut, pathWithID("/drives/", d.DriveID), d, nil)
}

// PatchDrive updates the drive d.DriveID of a running guest (PATCH
// /drives/{drive_id}).
func (c *Client) PatchDrive(ctx context.Context, d PartialDrive) error {
	return c.do(ctx, http.MethodPatch, pathWithID("/drives/", d.DriveID), d, nil)
}

// PutNetworkInterface creates the network interface n.IfaceID (PUT
// /network-interfaces/{iface_id}). Pre-boot only.
func (c *Client) PutNetworkInterface(ctx context.Context, n NetworkInterface) error {
	return c.do(ctx, http.MethodPut, pathWithID("/network-interfaces/", n.IfaceID), n, nil)
}

// PutVsock creates or updates the vsock device (PUT /vsock). Pre-boot only.
func (c *Client) PutVsock(ctx context.Context, v Vsock) error {
	return c.do(ctx, http.MethodPut, "/vsock", v, nil)
}

// PutLogger initializes Firecracker's log (PUT /logger).
func (c *Client) PutLogger(ctx context.Context, l Logger) error {
	return c.do(ctx, http.MethodPut, "/logger", l, nil)
}

// instanceAction is the body of PUT /actions.
type instanceAction struct {
	ActionType string `json:"action_type"`
}

// StartInstance boots the guest (PUT /actions InstanceStart).
func (c *Client) StartInstance(ctx context.Context) error {
	return c.do(ctx, http.MethodPut, "/actions", instanceAction{ActionType: "InstanceStart"}, nil)
}

// SendCtrlAltDel sends Ctrl+Alt+Del to the guest's keyboard, which asks an
// x86 guest to reboot or shut down (PUT /actions SendCtrlAltDel).
func (c *Client) SendCtrlAltDel(ctx context.Context) error {
	return c.do(ctx, http.MethodPut, "/actions", instanceAction{ActionType: "SendCtrlAltDel"}, nil)
}

// vm is the body of PATCH /vm.
type vm struct {
	State VMState `json:"state"`
}

// PatchVM pauses or resumes the microVM (PATCH /vm).
func (c *Client) PatchVM(ctx context.Context, state VMState) error {
	return c.do(ctx, http.MethodPatch, "/vm", vm{State: state}, nil)
}

// DescribeInstance returns the instance's id, state and version (GET /).
func (c *Client) DescribeInstance(ctx context.Context) (InstanceInfo, error) {
	var info InstanceInfo
	err := c.do(ctx, http.MethodGet, "/", nil, &info)
	return info, err
}

// Version returns Firecracker's build version, e.g. "1.16.1" (GET /version).
func (c *Client) Version(ctx context.Context) (string, error) {
	var v struct {
		FirecrackerVersion string `json:"firecracker_version"`
	}
	err := c.do(ctx, http.MethodGet, "/version", nil, &v)
	return v.FirecrackerVersion, err
}
