package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// Host paths of the shim.
const (
	// stateRoot holds a directory per pod: <namespace>-<pod id>.
	stateRoot = "/run/petty-shim"
	// vmRunRoot is the vm package's run root of the pods' VMs.
	vmRunRoot = stateRoot + "/vm"
	// shareDirName is the pod directory's subdirectory that virtiofsd
	// shares with the guest; each container's root file system is bound
	// at share/<container id>.
	shareDirName = "share"
	// guestShare is where the guest mounts the shared directory.
	guestShare = "/run/petty/share"
	// shareTag is the virtio-fs tag of the shared directory.
	shareTag = "petty"
	// guestBusybox is the initramfs's busybox: kill, mount, nsenter.
	guestBusybox = "/bin/busybox"
	// virtiofsdPath is QEMU's virtiofsd in Debian 12 (qemu-system-common).
	virtiofsdPath = "/usr/lib/qemu/virtiofsd"
)

// Environment variables that configure the shim (containerd passes its
// environment on).
const (
	// envKernel and envInitrd name a prebuilt guest kernel and initramfs
	// (with petty-agent); without them the shim builds them with package
	// image from the host's Debian kernel into envCache.
	envKernel = "PETTY_SHIM_KERNEL"
	envInitrd = "PETTY_SHIM_INITRD"
	// envAgent is the static petty-agent to build the initramfs with;
	// default: petty-agent beside the shim's executable, then in PATH.
	envAgent = "PETTY_SHIM_AGENT"
	// envCache is the image cache directory; default /var/cache/petty-shim.
	envCache = "PETTY_SHIM_CACHE"
	// envAccel is QEMU's accelerator: auto (default), kvm or tcg.
	envAccel = "PETTY_SHIM_ACCEL"
)

// pod is a VM and the virtiofsd that shares the containers' root file
// systems with it (none in block mode).
type pod struct {
	dir      string // <stateRoot>/<namespace>-<id>
	m        *vm.Machine
	client   *agent.Client
	block    bool // root file systems are block devices (rootfsblock.go)
	fsd      *exec.Cmd
	fsdDone  chan struct{}
	vmExited chan struct{} // closed when the VM is gone
}

// shareDir returns the host directory shared with the guest.
func (p *pod) shareDir() string { return filepath.Join(p.dir, shareDirName) }

// guestImage returns the guest kernel and initramfs.
func guestImage(ctx context.Context) (kernel, initrd string, err error) {
	if k, i := os.Getenv(envKernel), os.Getenv(envInitrd); k != "" && i != "" {
		return k, i, nil
	}
	agentPath := os.Getenv(envAgent)
	if agentPath == "" {
		if self, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(self), "petty-agent"); fileExists(p) {
				agentPath = p
			}
		}
	}
	if agentPath == "" {
		if p, err := exec.LookPath("petty-agent"); err == nil {
			agentPath = p
		}
	}
	if agentPath == "" {
		return "", "", fmt.Errorf("no petty-agent beside the shim, in PATH or in $%s", envAgent)
	}
	cache := os.Getenv(envCache)
	if cache == "" {
		cache = "/var/cache/petty-shim"
	}
	img, err := image.Build(ctx, image.Options{AgentPath: agentPath, CacheDir: cache})
	if err != nil {
		return "", "", fmt.Errorf("guest image: %w", err)
	}
	return img.Kernel, img.Initrd, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// podOptions describe a pod's VM.
type podOptions struct {
	dir     string // <stateRoot>/<namespace>-<id>
	memMiB  int
	vcpus   int
	backend backend
	// rootImage, in block mode, is the ext4 image of the first container's
	// root file system, attached as the VM's only drive.
	rootImage string
}

// vmConfig returns the VM's configuration: the guest runs from its
// initramfs; root file systems come over virtio-fs (socket fsSock) or, in
// block mode, as the drive rootImage. Under Firecracker the agent's
// channel is vsock.
func (o podOptions) vmConfig(kernel, initrd, fsSock string) vm.Config {
	cfg := vm.Config{
		VMM: o.backend.VMM, VCPUs: o.vcpus, MemoryMiB: o.memMiB,
		Kernel: kernel, Initrd: initrd, RunDir: vmRunRoot,
	}
	switch o.backend.VMM {
	case vm.Firecracker:
		cfg.FirecrackerBin = o.backend.FirecrackerBin
		cfg.Vsock = &vm.Vsock{}
	default:
		cfg.Accel = o.backend.Accel
	}
	if o.backend.Block {
		if o.rootImage != "" {
			cfg.Drives = []vm.Drive{{ID: rootDriveID, Path: o.rootImage}}
		}
	} else {
		cfg.Shares = []vm.Share{{Tag: shareTag, Socket: fsSock}}
	}
	return cfg
}

// startPod boots a pod's VM; unless in block mode, with the pod
// directory's share directory mounted in the guest at guestShare.
func startPod(ctx context.Context, o podOptions, logger *slog.Logger) (_ *pod, retErr error) {
	dir := o.dir
	p := &pod{dir: dir, block: o.backend.Block, fsdDone: make(chan struct{}), vmExited: make(chan struct{})}
	if err := os.MkdirAll(p.shareDir(), 0o711); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			p.destroy(context.Background())
		}
	}()
	kernel, initrd, err := guestImage(ctx)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "fs.sock")
	if o.backend.Block {
		close(p.fsdDone)
	} else if err := p.startVirtiofsd(ctx, sock); err != nil {
		return nil, err
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return nil, err
	}
	defer console.Close()
	cfg := o.vmConfig(kernel, initrd, sock)
	cfg.Console, cfg.Logger = console, logger
	if p.m, err = vm.New(cfg); err != nil {
		return nil, err
	}
	if err := p.m.Start(ctx); err != nil {
		return nil, err
	}
	go func() { p.m.Wait(context.Background()); close(p.vmExited) }()
	if p.client, err = p.m.Agent(ctx); err != nil {
		return nil, err
	}
	if _, err := p.run(ctx, "mkdir", "-p", guestShare); err != nil {
		return nil, err
	}
	if o.backend.Block {
		return p, nil
	}
	if _, err := p.run(ctx, "mount", "-t", "virtiofs", shareTag, guestShare); err != nil {
		return nil, err
	}
	return p, nil
}

// startVirtiofsd starts virtiofsd serving the share directory on sock.
func (p *pod) startVirtiofsd(ctx context.Context, sock string) error {
	_ = os.Remove(sock)
	fsdLog, err := os.Create(filepath.Join(p.dir, "virtiofsd.log"))
	if err != nil {
		return err
	}
	defer fsdLog.Close()
	// sandbox=chroot keeps virtiofsd in the host's mount namespace, so the
	// root file systems bound into the share directory later are visible.
	p.fsd = exec.Command(virtiofsdPath, "--socket-path="+sock, "-o", "source="+p.shareDir(),
		"-o", "cache=none", "-o", "sandbox=chroot", "-o", "xattr")
	p.fsd.Stdout, p.fsd.Stderr = fsdLog, fsdLog
	// A shim that dies takes virtiofsd with it (QEMU too: package vm).
	p.fsd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.fsd.Start(); err != nil {
		p.fsd = nil
		close(p.fsdDone)
		return fmt.Errorf("virtiofsd: %w", err)
	}
	go func() { p.fsd.Wait(); close(p.fsdDone) }()
	if err := waitFile(ctx, sock, p.fsdDone); err != nil {
		return fmt.Errorf("virtiofsd: %w", err)
	}
	return nil
}

// waitFile waits for path to appear while the process behind done lives.
func waitFile(ctx context.Context, path string, done <-chan struct{}) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !fileExists(path) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errors.New("exited before creating its socket")
		case <-t.C:
		}
	}
	return nil
}

// run runs a command in the guest (outside the containers) and returns its
// output.
func (p *pod) run(ctx context.Context, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := p.client.Exec(ctx, &agent.Cmd{Args: args, Stdout: &out, Stderr: &errOut})
	if err != nil {
		return out.String(), fmt.Errorf("guest %q: %w: %s", args, err, errOut.String())
	}
	return out.String(), nil
}

// destroy stops the VM and virtiofsd and removes the pod's directory.
func (p *pod) destroy(ctx context.Context) {
	if p.client != nil {
		p.client.Close()
	}
	if p.m != nil {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = p.m.Shutdown(sctx)
		_ = p.m.Destroy(sctx)
		cancel()
	}
	if p.fsd != nil {
		_ = p.fsd.Process.Kill()
		<-p.fsdDone
	}
	p.removeDir()
}

// removeDir removes the pod's directory, never following into a container's
// root file system: bound ones are unmounted first, and only empty
// directories and the pod's own files are removed.
func (p *pod) removeDir() {
	entries, _ := os.ReadDir(p.shareDir())
	for _, e := range entries {
		target := filepath.Join(p.shareDir(), e.Name())
		_ = unix.Unmount(target, unix.MNT_DETACH)
		_ = os.Remove(target)
	}
	for _, name := range []string{shareDirName, "fs.sock", "virtiofsd.log", "console.log"} {
		_ = os.Remove(filepath.Join(p.dir, name))
	}
	images, _ := filepath.Glob(filepath.Join(p.dir, "*"+rootImageSuffix))
	for _, img := range images {
		_ = os.Remove(img)
	}
	_ = os.Remove(p.dir)
}
