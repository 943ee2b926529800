package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/vm"
)

// firecrackerFix says what the real-Firecracker test needs.
const firecrackerFix = "the real-Firecracker shim test needs root, PETTY_FIRECRACKER_BIN (a firecracker v1.16 binary), " +
	"PETTY_SHIM_KERNEL and PETTY_SHIM_INITRD (a vmlinux that reads virtio_mmio.device= from its command line with " +
	"virtio_blk, vsock and ext4, and an initramfs with petty-agent: `petty image build --kernel-source` prints both), " +
	"mkfs.ext4 (e2fsprogs) and a /dev/kvm that boots guests"

// TestFirecrackerBlockRootfs boots a pod's VM under the real Firecracker
// the way the shim does with $PETTY_SHIM_VMM=firecracker: a container's
// root file system becomes an ext4 image, the VM's drive; the guest mounts
// it where the container's root is expected, reads the host's file and
// writes its own.
func TestFirecrackerBlockRootfs(t *testing.T) {
	if os.Geteuid() != 0 || os.Getenv(vm.FirecrackerBinEnv) == "" || os.Getenv(envKernel) == "" || os.Getenv(envInitrd) == "" {
		t.Skip(firecrackerFix)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("%v: %s", err, firecrackerFix)
	}
	f.Close()
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		t.Skip("/dev/kvm is a nested PVM KVM, on which stock guest kernels hang: " + firecrackerFix)
	}
	t.Setenv(envVMM, "firecracker")
	t.Setenv(envRootfs, "")
	be, err := selectBackend()
	if err != nil {
		t.Fatal(err)
	}
	if be.VMM != vm.Firecracker || !be.Block {
		t.Fatalf("backend %+v, want Firecracker with block root file systems", be)
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := &container{id: "fc-test", bundle: bundle, execs: map[string]*process{}, hasDrive: true}
	o := podOptions{dir: filepath.Join(stateRoot, "petty-test-fc-"+time.Now().Format("150405.000")), memMiB: 256, vcpus: 1, backend: be}
	if o.rootImage, err = c.makeRootImage(ctx, o.dir); err != nil {
		t.Fatal(err)
	}
	p, err := startPod(ctx, o, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.destroy(context.Background())
		if _, err := os.Stat(o.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod directory %s left: %v", o.dir, err)
		}
	}()
	c.pod = p
	if err := c.mountRoot(ctx); err != nil {
		t.Fatal(err)
	}
	out, err := p.run(ctx, "sh", "-c", "cat "+c.guestRoot()+"/etc/hello && echo guest > "+c.guestRoot()+"/w && cat "+c.guestRoot()+"/w")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out); got != "from the host\nguest" {
		t.Errorf("guest output %q, want the host's file and its own", got)
	}
	c.unmountRoot(ctx)
}
