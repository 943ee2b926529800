package vm_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/pettyvm/petty/vm"
)

// A VM's whole life: validate and create, boot, talk to the guest over vsock,
// stop gracefully, and remove everything petty made.
func ExampleNew() {
	cfg := vm.Config{
		Kernel:    "vmlinux",
		RootDrive: vm.Drive{Path: "rootfs.ext4"},
		Vsock:     &vm.Vsock{}, // CID 3, socket in the VM's run directory
	}
	m, err := vm.New(cfg) // validates every field; starts nothing
	if err != nil {
		log.Fatal(err) // e.g. "vm: config: Kernel: cannot use "vmlinux": ..."
	}
	defer m.Destroy(context.Background())

	bootCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Start(bootCtx); err != nil { // bootCtx bounds the boot only
		log.Fatal(err)
	}
	fmt.Println(m.ID(), m.State(), m.PID())
}

// Shutdown asks the guest to power off, then escalates to SIGTERM and, at
// the context's deadline, SIGKILL. It always reaps the VMM.
func ExampleMachine_Shutdown() {
	m, err := vm.Create(context.Background(), vm.Config{Kernel: "vmlinux", RootDrive: vm.Drive{Path: "rootfs.ext4"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		log.Print(err) // wraps vm.ErrKilled when the VMM had to be killed
	}
	_ = m.Destroy(ctx)
}

// The fluent Builder writes the same Config.
func ExampleBuilder() {
	m, err := new(vm.Builder).
		VCPUs(2).
		MemoryMiB(512).
		Kernel("vmlinux").
		RootFS("rootfs.ext4").
		Drive(vm.Drive{ID: "data", Path: "data.ext4"}).
		Vsock(0).
		Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Destroy(context.Background())
}

// Snapshot a running VM once, then start clones of it: each is a running
// Machine with its own writable disks, RNG, clock and host name.
func ExampleRestore() {
	ctx := context.Background()
	origin, err := vm.Create(ctx, vm.Config{VMM: vm.QEMU, Kernel: "vmlinux", Initrd: "initrd.img"})
	if err != nil {
		log.Fatal(err)
	}
	defer origin.Destroy(ctx)
	// ... prepare the guest: install packages, start services ...
	if err := origin.Snapshot(ctx, "base.snap"); err != nil { // origin runs on
		log.Fatal(err)
	}
	for _, name := range []string{"clone-1", "clone-2"} {
		m, err := vm.Restore(ctx, "base.snap", vm.RestoreOptions{Hostname: name})
		if errors.Is(err, vm.ErrSnapshot) {
			log.Fatal(err) // another backend's snapshot, a newer format, a missing file
		} else if err != nil {
			log.Fatal(err)
		}
		defer m.Destroy(ctx)
		c, err := m.Agent(ctx) // answers at once: Restore waited for it
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
	}
}
