package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/protobuf"
	"github.com/containerd/containerd/runtime/v2/shim"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/vm"
)

// groupAnnotations name a container's pod: containers of one pod share a
// shim and so a VM.
var groupAnnotations = []string{
	"io.kubernetes.cri.sandbox-id",
	"io.kubernetes.cri-o.SandboxID",
}

// StartShim starts the shim daemon for the container opts.ID (or connects
// to its pod's daemon) and returns the ttrpc socket address.
func (s *service) StartShim(ctx context.Context, opts shim.StartOpts) (_ string, retErr error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return "", err
	}
	grouping := opts.ID
	if spec, err := readBundleSpec("."); err == nil {
		for _, a := range groupAnnotations {
			if g, ok := spec.Annotations[a]; ok && g != "" {
				grouping = g
				break
			}
		}
	}
	address, err := shim.SocketAddress(ctx, opts.Address, grouping)
	if err != nil {
		return "", err
	}
	socket, err := shim.NewSocket(address)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return "", fmt.Errorf("create shim socket: %w", err)
		}
		if shim.CanConnect(address) {
			if err := shim.WriteAddress("address", address); err != nil {
				return "", err
			}
			return address, nil
		}
		if err := shim.RemoveSocket(address); err != nil {
			return "", fmt.Errorf("remove stale shim socket: %w", err)
		}
		if socket, err = shim.NewSocket(address); err != nil {
			return "", fmt.Errorf("create shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			socket.Close()
			_ = shim.RemoveSocket(address)
		}
	}()
	if err := shim.WriteAddress("address", address); err != nil {
		return "", err
	}
	f, err := socket.File()
	if err != nil {
		return "", err
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	args := []string{"-namespace", ns, "-id", opts.ID, "-address", opts.Address}
	if opts.Debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	go cmd.Wait()
	return address, nil
}

// Cleanup is "delete": containerd calls it when the shim died; it removes
// what the container left on the host (its root file system mount) and
// reports the task killed.
func (s *service) Cleanup(ctx context.Context) (*taskAPI.DeleteResponse, error) {
	// The root file system's bind mount in a pod's shared directory (the
	// daemon removes it itself unless it died); containerd unmounts the
	// bundle's rootfs.
	binds, _ := filepath.Glob(filepath.Join(stateRoot, "*", shareDirName, s.id))
	for _, b := range binds {
		_ = unix.Unmount(b, unix.MNT_DETACH)
		_ = os.Remove(b)
	}
	// The pod's directory when this is its sandbox (or only) container:
	// its QEMU and virtiofsd died with the shim (parent-death signal).
	if ns, err := namespaces.NamespaceRequired(ctx); err == nil {
		(&pod{dir: filepath.Join(stateRoot, ns+"-"+s.id)}).removeDir()
	}
	// The run directories of VMs whose shim died.
	if _, err := vm.Reclaim(vmRunRoot); err != nil {
		log.G(ctx).WithError(err).Warn("petty: reclaiming dead VMs' run directories")
	}
	return &taskAPI.DeleteResponse{
		ExitedAt:   protobuf.ToTimestamp(time.Now()),
		ExitStatus: 128 + uint32(unix.SIGKILL),
	}, nil
}

// readBundleSpec reads the OCI spec of the bundle in dir.
func readBundleSpec(dir string) (*ociSpec, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	var s ociSpec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("bundle config.json: %w", err)
	}
	return &s, nil
}
