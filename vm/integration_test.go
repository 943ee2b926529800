package vm_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/vm"
)

// integrationConfig returns a Config for a real Firecracker on real KVM, or
// skips the test saying exactly what to provide.
func integrationConfig(t *testing.T) vm.Config {
	t.Helper()
	bin, kernel, rootfs := os.Getenv(vm.FirecrackerBinEnv), os.Getenv("PETTY_KERNEL"), os.Getenv("PETTY_ROOTFS")
	if bin == "" || kernel == "" || rootfs == "" {
		t.Skip("real Firecracker tests need PETTY_FIRECRACKER_BIN (a firecracker v1.16 binary), " +
			"PETTY_KERNEL (a vmlinux that reads virtio_mmio.device= from its command line: " +
			"`petty image build --kernel-source --rootfs` prints one) and PETTY_ROOTFS (an ext4 root file system " +
			"whose init is petty-agent: the rootfs that command prints), plus a /dev/kvm that boots guests")
	}
	if err := kvmUsable(); err != nil {
		t.Skipf("real Firecracker tests need a working KVM: %v", err)
	}
	// The root drive is copied so that tests never change the caller's image.
	dir := t.TempDir()
	copyPath := dir + "/rootfs.ext4"
	data, err := os.ReadFile(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return vm.Config{
		Kernel:         kernel,
		RootDrive:      vm.Drive{Path: copyPath},
		Vsock:          &vm.Vsock{},
		FirecrackerBin: bin,
		MemoryMiB:      256,
	}
}

// kvmUsable reports why /dev/kvm cannot boot Firecracker guests, if so.
func kvmUsable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	f.Close()
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return errors.New("/dev/kvm is a nested PVM KVM (kvm_pvm is loaded), on which stock guest kernels hang; run on bare metal or a VM with nested virtualization")
	}
	return nil
}

func TestIntegrationLifecycle(t *testing.T) {
	cfg := integrationConfig(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	m, err := vm.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(context.Background())
	pid := m.PID()

	c, err := m.Agent(ctx)
	if err != nil {
		t.Fatalf("agent: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	out, err := c.Output(ctx, "uname", "-r")
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Errorf("uname -r = %q, %v", out, err)
	}
	c.Close()

	if err := m.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancelStop := context.WithTimeout(ctx, 10*time.Second)
	defer cancelStop()
	if err := m.Shutdown(stopCtx); err != nil {
		t.Errorf("graceful shutdown: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	if err := m.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := m.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	checkClean(t, m, pid)
}
