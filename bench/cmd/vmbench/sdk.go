package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	firecracker "github.com/firecracker-microvm/firecracker-go-sdk"
	"github.com/sirupsen/logrus"
)

// sdkDriver boots VMs with firecracker-go-sdk.
type sdkDriver struct {
	fake    string
	img     images
	baseDir string
	logger  *logrus.Entry
}

func newSDKDriver(fake string, img images, baseDir string) *sdkDriver {
	l := logrus.New()
	l.SetOutput(io.Discard) // petty's default logger drops everything too
	l.SetLevel(logrus.ErrorLevel)
	return &sdkDriver{fake: fake, img: img, baseDir: baseDir, logger: logrus.NewEntry(l)}
}

func (s *sdkDriver) name() string { return "sdk" }

// create mirrors what vm.Create does for the same Config: a private run
// directory, the same firecracker argv, the VMM in its own process group with
// its console captured through a pipe, the same five API calls.
func (s *sdkDriver) create(ctx context.Context, n int) (vmHandle, error) {
	dir := filepath.Join(s.baseDir, strconv.Itoa(n))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("sdk-%d", n)
	sock := filepath.Join(dir, "firecracker.sock")
	cfg := firecracker.Config{
		VMID:            id,
		SocketPath:      sock,
		KernelImagePath: s.img.kernel,
		KernelArgs:      bootArgs,
		Drives:          firecracker.NewDrivesBuilder(s.img.rootfs).Build(),
		VsockDevices:    []firecracker.VsockDevice{{Path: filepath.Join(dir, "vsock.sock"), CID: guestCID}},
		MachineCfg:      sdkMachineConfig(),
		// The SDK forwards SIGINT/SIGTERM/... to every VMM by default;
		// petty does not, and the benchmark needs neither.
		ForwardSignals: []os.Signal{},
	}
	cmd := exec.Command(s.fake, "--api-sock", sock, "--id", id)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard // a pipe, as petty's console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The Machine's ctx must outlive the VM: the SDK kills the VMM when it
	// ends. Run it on a context that only the handle cancels.
	vmCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m, err := firecracker.NewMachine(vmCtx, cfg,
		firecracker.WithProcessRunner(cmd),
		firecracker.WithLogger(s.logger))
	if err != nil {
		cancel()
		return nil, err
	}
	configureSDKHandlers(m)
	if err := m.Start(vmCtx); err != nil {
		cancel()
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &sdkVM{m: m, dir: dir, cancel: cancel}, nil
}

type sdkVM struct {
	m      *firecracker.Machine
	dir    string
	cancel context.CancelFunc
}

// shutdown sends Ctrl-Alt-Del (all that the SDK's Shutdown does) and waits
// for the process to be reaped (Wait returns once cmd.Wait has).
func (v *sdkVM) shutdown(ctx context.Context) error {
	if err := v.m.Shutdown(ctx); err != nil {
		return err
	}
	return v.m.Wait(ctx)
}

func (v *sdkVM) cleanup() error {
	v.cancel()
	return os.RemoveAll(v.dir)
}
