package guest

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// finitModuleLoader loads modules with finit_module(2). Only the initramfs
// init (see BootInitramfs) uses it: module loading is not namespaced, so
// it must never run on a host.
type finitModuleLoader struct{}

func (finitModuleLoader) loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}
