package main

import (
	"context"
	"errors"

	"github.com/pettyvm/petty/vm"
)

// pettyDriver boots VMs with petty's vm package.
type pettyDriver struct{ cfg vm.Config }

func newPettyDriver(fake string, img images, runDir string) *pettyDriver {
	return &pettyDriver{cfg: vm.Config{
		VCPUs:          vcpus,
		MemoryMiB:      memMiB,
		Kernel:         img.kernel,
		BootArgs:       bootArgs,
		RootDrive:      vm.Drive{Path: img.rootfs},
		Vsock:          &vm.Vsock{CID: guestCID}, // socket in the VM's run dir
		FirecrackerBin: fake,
		RunDir:         runDir,
	}}
}

func (p *pettyDriver) name() string { return "petty" }

func (p *pettyDriver) create(ctx context.Context, _ int) (vmHandle, error) {
	m, err := vm.Create(ctx, p.cfg)
	if err != nil {
		return nil, err
	}
	return pettyVM{m}, nil
}

type pettyVM struct{ m *vm.Machine }

// shutdown returns once the VMM has been reaped; it must not have been killed.
func (v pettyVM) shutdown(ctx context.Context) error {
	if err := v.m.Shutdown(ctx); err != nil {
		return err
	}
	if st := v.m.State(); st != vm.Stopped {
		return errors.New("not stopped after Shutdown: " + st.String())
	}
	return nil
}

func (v pettyVM) cleanup() error { return v.m.Destroy(context.Background()) }
