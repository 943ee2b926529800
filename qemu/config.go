package qemu

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// The kernel command line in a config file.
//
// QEMU's command line is world-readable (ps, /proc/PID/cmdline), so a
// secret on the kernel command line (the agent's per-boot token) must not
// travel as -append. With Spec.ConfigPath set, Args names a -readconfig file
// instead, whose [machine] section sets the same machine property:
//
//	[machine]
//	append = "<Cmdline>"
//
// QEMU 7.2 reads such files in lines of at most 1023 bytes and a value
// cannot contain a double quote, hence MaxConfigCmdline and ErrCmdline.

// configAppend is the config file's line before the command line.
const configAppend = `append = "`

// MaxConfigCmdline is the longest kernel command line QEMU reads from a
// config file: its line, `append = "…"`, must fit QEMU's 1023-byte line
// buffer (the newline may spill over).
const MaxConfigCmdline = 1023 - len(configAppend) - len(`"`)

// ErrCmdline is returned (wrapped) by WriteConfig for a kernel command line
// that a config file cannot carry.
var ErrCmdline = errors.New("qemu: kernel command line cannot go in a config file")

// CheckConfigCmdline reports whether cmdline can go in a config file.
func CheckConfigCmdline(cmdline string) error {
	if len(cmdline) > MaxConfigCmdline {
		return fmt.Errorf("%w: %d bytes, over %d", ErrCmdline, len(cmdline), MaxConfigCmdline)
	}
	if i := strings.IndexAny(cmdline, "\"\n\r\x00"); i >= 0 {
		return fmt.Errorf("%w: it contains %q", ErrCmdline, cmdline[i])
	}
	return nil
}

// ConfigFile returns the contents of the -readconfig file that carries
// s.Cmdline.
func (s *Spec) ConfigFile() ([]byte, error) {
	if err := CheckConfigCmdline(s.Cmdline); err != nil {
		return nil, err
	}
	return []byte("# petty: the guest's kernel command line, kept off QEMU's argv\n[machine]\n" +
		configAppend + s.Cmdline + "\"\n"), nil
}

// WriteConfig writes s.ConfigFile to s.ConfigPath, readable by the owner
// only; an existing file there is replaced.
func (s *Spec) WriteConfig() error {
	b, err := s.ConfigFile()
	if err != nil {
		return err
	}
	if err := os.Remove(s.ConfigPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("qemu: config file: %w", err)
	}
	f, err := os.OpenFile(s.ConfigPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("qemu: config file: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("qemu: config file: %w", err)
	}
	return nil
}
