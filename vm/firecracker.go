package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/internal/retry"
	"github.com/pettyvm/petty/vsock"
)

// apiSocketName is the Firecracker API socket's name in the run directory.
const apiSocketName = "firecracker.sock"

// firecrackerBackend drives one Firecracker process through its HTTP API.
type firecrackerBackend struct {
	log     *slog.Logger
	apiSock string
	vsock   string // the hybrid vsock UDS, "" without vsock
	// ownVsock is set when vsock lies in the run directory (the default).
	ownVsock bool
	client   *firecracker.Client
	token    string // the agent's token for this boot
}

var _ backend = (*firecrackerBackend)(nil)

// useConfigFile selects how the Firecracker backend configures the VMM:
// false makes the API calls one by one (PUT /machine-config, /boot-source,
// /drives/…, /network-interfaces/…, /vsock, then InstanceStart); true passes
// the same configuration with --config-file, so that Firecracker boots at
// once, and Start waits for the API to report the instance running.
// BenchmarkStartFirecracker measures both: the config file saves five round
// trips (about 15% of Start on the fake firecracker, see the README), so it is
// the default. A configuration Firecracker rejects then makes it exit, and
// Start reports an *ExitError whose console tail holds Firecracker's reason;
// with API calls it would be a *firecracker.APIError naming the call.
var useConfigFile = true

// configFileName is the --config-file's name in the run directory.
const configFileName = "firecracker.json"

func (f *firecrackerBackend) command(b *boot) (*exec.Cmd, error) {
	f.apiSock = filepath.Join(b.runDir, apiSocketName)
	if b.cfg.Vsock != nil {
		f.vsock = b.cfg.Vsock.Path
		if filepath.Dir(f.vsock) == b.runDir {
			f.ownVsock = true
		}
	}
	// Firecracker refuses to start when its API socket exists and fails
	// PUT /vsock when the vsock UDS exists; it never removes either. Only
	// sockets in the private run directory are removed here: a
	// user-supplied Vsock.Path is the Machine's (see ownedFile).
	if err := f.removeSockets(); err != nil {
		return nil, err
	}
	// The client exists before the process does, so that release (run by
	// the reaper) never races with start.
	f.client = firecracker.NewClient(f.apiSock)
	tok, err := f.bootToken(b) // snapshot_firecracker.go
	if err != nil {
		return nil, err
	}
	f.token = tok
	args := []string{"--api-sock", f.apiSock, "--id", b.id}
	if useConfigFile && b.restore == nil {
		data, err := json.Marshal(f.config(b.cfg))
		if err != nil {
			return nil, err
		}
		path := filepath.Join(b.runDir, configFileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "--config-file", path)
	}
	cmd := exec.Command(b.cfg.FirecrackerBin, args...)
	cmd.Dir = b.runDir
	return cmd, nil
}

// config is firecrackerConfig with this boot's agent token on the kernel
// command line; it reaches Firecracker through the 0600 config file or the
// API socket, never its argv.
func (f *firecrackerBackend) config(c *Config) firecracker.Config {
	fc := firecrackerConfig(c)
	fc.BootSource.BootArgs = withToken(fc.BootSource.BootArgs, f.token)
	relativeDrives(&fc) // snapshot_firecracker.go
	return fc
}

// firecrackerConfig translates a defaulted Config into Firecracker's terms.
func firecrackerConfig(c *Config) firecracker.Config {
	smt := c.SMT
	fc := firecracker.Config{
		MachineConfig: firecracker.MachineConfiguration{VcpuCount: c.VCPUs, MemSizeMib: c.MemoryMiB, Smt: &smt},
		BootSource:    firecracker.BootSource{KernelImagePath: c.Kernel, InitrdPath: c.Initrd, BootArgs: c.BootArgs},
	}
	for i, d := range c.allDrives() {
		ro := d.ReadOnly
		fc.Drives = append(fc.Drives, firecracker.Drive{
			DriveID: d.ID, PathOnHost: d.Path, IsRootDevice: i == 0 && c.RootDrive.Path != "", IsReadOnly: &ro,
		})
	}
	if n := c.Network; n != nil {
		fc.NetworkInterfaces = []firecracker.NetworkInterface{{IfaceID: firecrackerIfaceID, HostDevName: n.Tap, GuestMac: n.MAC}}
	}
	if v := c.Vsock; v != nil {
		fc.Vsock = &firecracker.Vsock{GuestCID: v.CID, UdsPath: v.Path}
	}
	return fc
}

func (f *firecrackerBackend) start(ctx context.Context, b *boot) error {
	if err := waitForSocket(ctx, f.apiSock, b.exited); err != nil {
		return err
	}
	if b.restore != nil {
		return f.load(ctx, b) // snapshot_firecracker.go
	}
	if useConfigFile {
		return f.awaitRunning(ctx, b.exited)
	}
	return f.configure(ctx, f.config(b.cfg))
}

// configure sends fc through the API, then InstanceStart.
func (f *firecrackerBackend) configure(ctx context.Context, fc firecracker.Config) error {
	if err := f.client.PutMachineConfig(ctx, fc.MachineConfig); err != nil {
		return err
	}
	if err := f.client.PutBootSource(ctx, fc.BootSource); err != nil {
		return err
	}
	for _, d := range fc.Drives {
		if err := f.client.PutDrive(ctx, d); err != nil {
			return err
		}
	}
	for _, n := range fc.NetworkInterfaces {
		if err := f.client.PutNetworkInterface(ctx, n); err != nil {
			return err
		}
	}
	if fc.Vsock != nil {
		if err := f.client.PutVsock(ctx, *fc.Vsock); err != nil {
			return err
		}
	}
	return f.client.StartInstance(ctx)
}

// awaitRunning polls GET / until a VMM started with --config-file reports
// its instance running (Firecracker answers API calls only once the boot from
// the file is done, so the first answer normally says Running).
func (f *firecrackerBackend) awaitRunning(ctx context.Context, exited <-chan struct{}) error {
	err := retry.Do(ctx, retry.Backoff{Min: 100 * time.Microsecond, Max: socketPollMax, Stop: exited},
		func(ctx context.Context) error {
			info, err := f.client.DescribeInstance(ctx)
			if err != nil {
				return retry.Permanent(err)
			}
			if info.State != firecracker.InstanceStateRunning {
				return fmt.Errorf("instance is %q", info.State)
			}
			return nil
		})
	if errors.Is(err, retry.ErrStopped) {
		return fmt.Errorf("VMM exited while booting from its config file: %w", err)
	}
	return err
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

func (f *firecrackerBackend) agentToken() string { return f.token }

func (f *firecrackerBackend) release() {
	_ = f.client.Close()
	_ = f.removeSockets()
}

func (f *firecrackerBackend) removeSockets() error {
	var errs []error
	paths := []string{f.apiSock}
	if f.ownVsock {
		paths = append(paths, f.vsock)
	}
	for _, p := range paths {
		if p != "" {
			errs = append(errs, removeIfExists(p))
		}
	}
	return errors.Join(errs...)
}
