package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"

	"github.com/pettyvm/petty/vm"
)

// fakeFirecrackerBin writes an executable named firecracker for
// vm.FindFirecracker to find; it is never run.
func fakeFirecrackerBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "firecracker")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSelectBackend(t *testing.T) {
	fc := fakeFirecrackerBin(t)
	tests := []struct {
		name            string
		vmm, rootfs     string
		fcBin           string
		wantVMM         vm.VMM
		wantBlock, fail bool
	}{
		{name: "default: QEMU, virtio-fs", wantVMM: vm.QEMU},
		{name: "QEMU block for testing", rootfs: "block", wantVMM: vm.QEMU, wantBlock: true},
		{name: "QEMU share", vmm: "qemu", rootfs: "share", wantVMM: vm.QEMU},
		{name: "Firecracker: block", vmm: "firecracker", fcBin: fc, wantVMM: vm.Firecracker, wantBlock: true},
		{name: "Firecracker explicit block", vmm: "firecracker", rootfs: "block", fcBin: fc, wantVMM: vm.Firecracker, wantBlock: true},
		{name: "Firecracker cannot share", vmm: "firecracker", rootfs: "share", fcBin: fc, fail: true},
		{name: "Firecracker missing", vmm: "firecracker", fcBin: filepath.Join(t.TempDir(), "none"), fail: true},
		{name: "unknown VMM", vmm: "xen", fail: true},
		{name: "unknown mode", rootfs: "nfs", fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envVMM, tt.vmm)
			t.Setenv(envRootfs, tt.rootfs)
			t.Setenv(vm.FirecrackerBinEnv, tt.fcBin)
			b, err := selectBackend()
			if tt.fail {
				if err == nil {
					t.Fatalf("selectBackend() = %+v, want an error", b)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.VMM != tt.wantVMM || b.Block != tt.wantBlock {
				t.Errorf("selectBackend() = %+v, want VMM %s, block %v", b, tt.wantVMM, tt.wantBlock)
			}
			if b.VMM == vm.Firecracker && b.FirecrackerBin != fc {
				t.Errorf("FirecrackerBin = %q, want %q", b.FirecrackerBin, fc)
			}
		})
	}
	t.Run("missing firecracker says what to install", func(t *testing.T) {
		t.Setenv(envVMM, "firecracker")
		t.Setenv(envRootfs, "")
		t.Setenv(vm.FirecrackerBinEnv, filepath.Join(t.TempDir(), "none"))
		if _, err := selectBackend(); !errors.Is(err, vm.ErrNoFirecracker) {
			t.Errorf("err = %v, want vm.ErrNoFirecracker", err)
		}
	})
}

func TestPodVMConfig(t *testing.T) {
	t.Run("firecracker block", func(t *testing.T) {
		o := podOptions{memMiB: 512, vcpus: 2, rootImage: "/run/p/c1.rootfs.ext4",
			backend: backend{VMM: vm.Firecracker, FirecrackerBin: "/fc", Block: true}}
		cfg := o.vmConfig("/k", "/i", "/fs.sock")
		if cfg.VMM != vm.Firecracker || cfg.FirecrackerBin != "/fc" || cfg.MemoryMiB != 512 || cfg.VCPUs != 2 {
			t.Errorf("cfg = %+v", cfg)
		}
		if cfg.RootDrive.Path != "" {
			t.Errorf("RootDrive = %+v, want none (the guest runs from its initramfs)", cfg.RootDrive)
		}
		want := []vm.Drive{{ID: rootDriveID, Path: "/run/p/c1.rootfs.ext4"}}
		if len(cfg.Drives) != 1 || cfg.Drives[0] != want[0] {
			t.Errorf("Drives = %+v, want %+v (writable)", cfg.Drives, want)
		}
		if len(cfg.Shares) != 0 {
			t.Errorf("Shares = %+v, want none: Firecracker has no file sharing", cfg.Shares)
		}
		if cfg.Vsock == nil {
			t.Error("no vsock: the agent's channel under Firecracker")
		}
	})
	t.Run("qemu share", func(t *testing.T) {
		o := podOptions{backend: backend{VMM: vm.QEMU, Accel: "tcg"}}
		cfg := o.vmConfig("/k", "/i", "/fs.sock")
		if cfg.Accel != "tcg" || len(cfg.Drives) != 0 || len(cfg.Shares) != 1 || cfg.Shares[0].Socket != "/fs.sock" || cfg.Vsock != nil {
			t.Errorf("cfg = %+v", cfg)
		}
	})
	t.Run("qemu block", func(t *testing.T) {
		o := podOptions{rootImage: "/img", backend: backend{VMM: vm.QEMU, Accel: "auto", Block: true}}
		cfg := o.vmConfig("/k", "/i", "/fs.sock")
		if len(cfg.Drives) != 1 || cfg.Drives[0].Path != "/img" || cfg.Drives[0].ReadOnly || len(cfg.Shares) != 0 {
			t.Errorf("cfg = %+v", cfg)
		}
	})
}

// TestPodVMConfigFakeFirecracker boots the Firecracker configuration the
// shim builds on the strict fake firecracker (internal/fakefirecracker):
// it accepts the request sequence (boot source with the initramfs, machine
// config, the writable root file system drive, vsock, InstanceStart) and
// opens the drive's file.
func TestPodVMConfigFakeFirecracker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the fake firecracker; skipped with -short")
	}
	dir, err := os.MkdirTemp("", "pfc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fc := filepath.Join(dir, "firecracker")
	build(t, "../../internal/fakefirecracker", fc)
	kernel, initrd, img := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd"), filepath.Join(dir, "c1"+rootImageSuffix)
	for _, p := range []string{kernel, initrd, img} {
		if err := os.WriteFile(p, []byte("image"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := podOptions{memMiB: 256, vcpus: 1, rootImage: img, backend: backend{VMM: vm.Firecracker, FirecrackerBin: fc, Block: true}}
	cfg := o.vmConfig(kernel, initrd, "")
	cfg.RunDir = filepath.Join(dir, "run")
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("the fake firecracker refused the shim's configuration: %v", err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Errorf("Destroy: %v", err)
	}
}

func TestMakeRootImage(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("needs mkfs.ext4 and debugfs: apt-get install e2fsprogs")
	}
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skip("needs debugfs: apt-get install e2fsprogs")
	}
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "hello"), []byte("hello from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "c1"+rootImageSuffix)
	if err := makeRootImage(t.Context(), src, img); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("image mode %v, want 0600", st.Mode().Perm())
	}
	if st.Size() < imageFreeBytes {
		t.Errorf("image size %d, want at least the free margin %d", st.Size(), imageFreeBytes)
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used >= st.Size()/2 {
		t.Errorf("image uses %d of %d bytes: want a sparse file", used, st.Size())
	}
	out, err := exec.Command("debugfs", "-R", "cat /etc/hello", img).Output()
	if err != nil {
		t.Fatalf("debugfs: %v", err)
	}
	if string(out) != "hello from the host\n" {
		t.Errorf("/etc/hello in the image = %q", out)
	}
	// An existing file is never overwritten.
	if err := makeRootImage(t.Context(), src, img); !errors.Is(err, os.ErrExist) {
		t.Errorf("second makeRootImage: %v, want os.ErrExist", err)
	}
}

// TestCreateSecondBlockContainer: in block mode a pod's later container
// fails Create with a clear error (no drive hot-plug), leaving its root
// file system unmounted.
func TestCreateSecondBlockContainer(t *testing.T) {
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"process":{"args":["true"],"cwd":"/"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &service{id: "pod", containers: map[string]*container{}, pod: &pod{block: true}}
	ctx := namespaces.WithNamespace(t.Context(), "test")
	_, err := s.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c2", Bundle: bundle})
	if err == nil {
		t.Fatal("Create of a second container in block mode succeeded")
	}
	if !errdefs.IsFailedPrecondition(errdefs.FromGRPC(err)) || !strings.Contains(err.Error(), "hot-plug") {
		t.Errorf("err = %v, want FailedPrecondition naming the hot-plug limitation", err)
	}
	if len(s.containers) != 0 {
		t.Errorf("containers = %v, want none", s.containers)
	}
}
