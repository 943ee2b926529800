package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/vsock"
)

// apiSocketName is the Firecracker API socket's name in the run directory.
const apiSocketName = "firecracker.sock"

// firecrackerBackend drives one Firecracker process through its HTTP API.
type firecrackerBackend struct {
	log     *slog.Logger
	apiSock string
	vsock   string // the hybrid vsock UDS, "" without vsock
	client  *firecracker.Client
}

var _ backend = (*firecrackerBackend)(nil)

func (f *firecrackerBackend) command(b *boot) (*exec.Cmd, error) {
	f.apiSock = filepath.Join(b.runDir, apiSocketName)
	if b.cfg.Vsock != nil {
		f.vsock = b.cfg.Vsock.Path
	}
	// Firecracker refuses to start when its API socket exists and fails
	// PUT /vsock when the vsock UDS exists; it never removes either.
	if err := f.removeSockets(); err != nil {
		return nil, err
	}
	cmd := exec.Command(b.cfg.FirecrackerBin, "--api-sock", f.apiSock, "--id", b.id)
	cmd.Dir = b.runDir
	return cmd, nil
}

func (f *firecrackerBackend) start(ctx context.Context, b *boot) error {
	if err := waitForSocket(ctx, f.apiSock, b.exited); err != nil {
		return err
	}
	f.client = firecracker.NewClient(f.apiSock)
	c := b.cfg
	smt := c.SMT
	if err := f.client.PutMachineConfig(ctx, firecracker.MachineConfiguration{
		VcpuCount: c.VCPUs, MemSizeMib: c.MemoryMiB, Smt: &smt,
	}); err != nil {
		return err
	}
	if err := f.client.PutBootSource(ctx, firecracker.BootSource{
		KernelImagePath: c.Kernel, InitrdPath: c.Initrd, BootArgs: c.BootArgs,
	}); err != nil {
		return err
	}
	for i, d := range c.allDrives() {
		ro := d.ReadOnly
		if err := f.client.PutDrive(ctx, firecracker.Drive{
			DriveID: d.ID, PathOnHost: d.Path, IsRootDevice: i == 0 && c.RootDrive.Path != "", IsReadOnly: &ro,
		}); err != nil {
			return err
		}
	}
	if n := c.Network; n != nil {
		if err := f.client.PutNetworkInterface(ctx, firecracker.NetworkInterface{
			IfaceID: "eth0", HostDevName: n.Tap, GuestMac: n.MAC,
		}); err != nil {
			return err
		}
	}
	if v := c.Vsock; v != nil {
		if err := f.client.PutVsock(ctx, firecracker.Vsock{GuestCID: v.CID, UdsPath: v.Path}); err != nil {
			return err
		}
	}
	return f.client.StartInstance(ctx)
}

func (f *firecrackerBackend) requestShutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return f.client.SendCtrlAltDel(ctx)
}

func (f *firecrackerBackend) pause(ctx context.Context) error {
	return f.client.PatchVM(ctx, firecracker.VMStatePaused)
}

func (f *firecrackerBackend) resume(ctx context.Context) error {
	return f.client.PatchVM(ctx, firecracker.VMStateResumed)
}

func (f *firecrackerBackend) dialVsock(ctx context.Context, port uint32) (net.Conn, error) {
	return vsock.DialRetry(ctx, f.vsock, port)
}

func (f *firecrackerBackend) dialAgent(ctx context.Context) (net.Conn, error) {
	if f.vsock == "" {
		return nil, ErrNoVsock
	}
	return vsock.DialRetry(ctx, f.vsock, agentPort)
}

func (f *firecrackerBackend) release() {
	if f.client != nil {
		_ = f.client.Close()
	}
	_ = f.removeSockets()
}

func (f *firecrackerBackend) removeSockets() error {
	var errs []error
	for _, p := range []string{f.apiSock, f.vsock} {
		if p != "" {
			errs = append(errs, removeIfExists(p))
		}
	}
	return errors.Join(errs...)
}

// socketPollMax caps the backoff between attempts to reach a VMM's socket.
const socketPollMax = time.Millisecond

// waitForSocket waits until a unix socket at path accepts connections,
// polling with a short exponential backoff (from 100µs, capped at 1ms). It fails when ctx
// ends or exited is closed (the VMM died first).
func waitForSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	delay := 100 * time.Microsecond
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn.Close()
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for VMM socket %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-exited:
			timer.Stop()
			return fmt.Errorf("VMM exited before its socket %s appeared", path)
		case <-timer.C:
		}
		delay = min(delay*2, socketPollMax)
	}
}
