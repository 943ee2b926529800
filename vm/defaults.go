package vm

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// withDefaults returns a deep copy of c with every zero-valued field that has
// a default filled in. Paths inside the VM's run directory are filled by New.
func (c Config) withDefaults() Config {
	d := c.clone()
	if d.VMM == "" {
		d.VMM = Firecracker
	}
	if d.VCPUs == 0 {
		d.VCPUs = DefaultVCPUs
	}
	if d.MemoryMiB == 0 {
		d.MemoryMiB = DefaultMemoryMiB
	}
	if d.BootArgs == "" {
		d.BootArgs = DefaultBootArgs
	}
	if d.RootDrive.Path != "" && d.RootDrive.ID == "" {
		d.RootDrive.ID = DefaultRootDriveID
	}
	for i := range d.Drives {
		if d.Drives[i].ID == "" {
			d.Drives[i].ID = "drive" + strconv.Itoa(i)
		}
	}
	if d.Vsock != nil && d.Vsock.CID == 0 && d.VMM != QEMU {
		// Firecracker's CID is private to its hybrid vsock; QEMU's CID 0
		// means "allocate a free one at Start" (see vhostvsock.go).
		d.Vsock.CID = DefaultVsockCID
	}
	if d.Accel == "" {
		d.Accel = "auto"
	}
	if d.RunDir == "" {
		d.RunDir = defaultRunDir()
	}
	if d.VMM == Firecracker && d.FirecrackerBin == "" {
		d.FirecrackerBin = defaultBinary(os.Getenv(FirecrackerBinEnv), "firecracker")
	}
	if d.VMM == QEMU && d.QEMUBin == "" {
		d.QEMUBin = defaultBinary("", "qemu-system-x86_64")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	d.absPaths()
	return d
}

// absPaths makes every file path absolute: VMMs run in the VM's run
// directory, where a relative path would name another file. Executables
// given as a bare name stay as they are (they are looked up in $PATH).
func (c *Config) absPaths() {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			if a, err := filepath.Abs(*p); err == nil {
				*p = a
			}
		}
	}
	abs(&c.Kernel)
	abs(&c.Initrd)
	abs(&c.RootDrive.Path)
	for i := range c.Drives {
		abs(&c.Drives[i].Path)
	}
	if c.Vsock != nil {
		abs(&c.Vsock.Path)
	}
	abs(&c.RunDir)
	for _, bin := range []*string{&c.FirecrackerBin, &c.QEMUBin} {
		if strings.Contains(*bin, "/") {
			abs(bin)
		}
	}
}

// defaultBinary returns explicit when set, else name's path in $PATH, else
// name itself (so that Validate reports it as missing).
func defaultBinary(explicit, name string) string {
	if explicit != "" {
		return explicit
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// defaultRunDir is the root of per-VM run directories when Config.RunDir is
// empty. Paths stay short: unix socket paths are limited to 107 bytes.
func defaultRunDir() string {
	if os.Geteuid() == 0 {
		return "/run/petty"
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && len(x) < 40 {
		return filepath.Join(x, "petty")
	}
	return fmt.Sprintf("/tmp/petty-%d", os.Geteuid())
}
