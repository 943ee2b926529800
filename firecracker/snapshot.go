package firecracker

import (
	"context"
	"net/http"
)

// Snapshot types of SnapshotCreateParams.
const (
	SnapshotTypeFull = "Full"
	SnapshotTypeDiff = "Diff"
)

// Memory backends of MemoryBackend.
const (
	MemoryBackendFile = "File"
	MemoryBackendUffd = "Uffd"
)

// SnapshotCreateParams is the body of PUT /snapshot/create.
type SnapshotCreateParams struct {
	MemFilePath  string `json:"mem_file_path"`
	SnapshotPath string `json:"snapshot_path"`
	SnapshotType string `json:"snapshot_type,omitempty"`
}

// MemoryBackend says where a snapshot's guest memory comes from.
type MemoryBackend struct {
	BackendType string `json:"backend_type"`
	BackendPath string `json:"backend_path"`
}

// NetworkOverride changes the tap of a network interface at a snapshot load.
type NetworkOverride struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
}

// VsockOverride changes the vsock device's unix socket at a snapshot load.
type VsockOverride struct {
	UdsPath string `json:"uds_path"`
}

// SnapshotLoadParams is the body of PUT /snapshot/load.
type SnapshotLoadParams struct {
	SnapshotPath     string            `json:"snapshot_path"`
	MemBackend       *MemoryBackend    `json:"mem_backend,omitempty"`
	TrackDirtyPages  bool              `json:"track_dirty_pages,omitempty"`
	ResumeVM         bool              `json:"resume_vm,omitempty"`
	NetworkOverrides []NetworkOverride `json:"network_overrides,omitempty"`
	VsockOverride    *VsockOverride    `json:"vsock_override,omitempty"`
}

// CreateSnapshot writes the paused microVM's state and memory (PUT
// /snapshot/create). Post-boot only; the microVM must be paused.
func (c *Client) CreateSnapshot(ctx context.Context, p SnapshotCreateParams) error {
	return c.do(ctx, http.MethodPut, "/snapshot/create", p, nil)
}

// LoadSnapshot restores a microVM from a snapshot (PUT /snapshot/load). Only
// a fresh Firecracker process accepts it, before any resource other than
// the logger and metrics is configured; a failed load ends the process.
func (c *Client) LoadSnapshot(ctx context.Context, p SnapshotLoadParams) error {
	return c.do(ctx, http.MethodPut, "/snapshot/load", p, nil)
}
