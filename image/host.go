package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Debian packages that provide what Build reads from the host.
const (
	kernelPackage  = "linux-image-cloud-amd64"
	busyboxPackage = "busybox-static"
	mkfsPackage    = "e2fsprogs"
)

// Host locations Build falls back to; variables so tests can point them at
// a temporary directory.
var (
	bootDir         = "/boot"
	modulesRoot     = "/lib/modules"
	defaultBusybox  = "/bin/busybox"
	kernelGlob      = "vmlinuz-*-cloud-amd64"
	mkfsName        = "mkfs.ext4"
	debugfsName     = "debugfs"
	sbinDirs        = []string{"/usr/sbin", "/sbin"}
	errNoDefaultDir = errors.New("no $XDG_CACHE_HOME and no home directory")
)

// defaultKernel returns the newest bootDir/vmlinuz-*-cloud-amd64.
func defaultKernel() (string, error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, kernelGlob))
	if err != nil {
		return "", err
	}
	if len(matches) == 0 {
		return "", &MissingError{What: "kernel " + filepath.Join(bootDir, kernelGlob), Package: kernelPackage}
	}
	best := matches[0]
	for _, m := range matches[1:] {
		if compareVersions(filepath.Base(m), filepath.Base(best)) > 0 {
			best = m
		}
	}
	return best, nil
}

// compareVersions compares strings such as "vmlinuz-6.1.0-9" and
// "vmlinuz-6.1.0-56" treating runs of digits as numbers.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da != db {
			return strings.Compare(a, b)
		}
		na, nb := span(a, da), span(b, da)
		ca, cb := a[:na], b[:nb]
		if da {
			ca, cb = strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if len(ca) != len(cb) {
				if len(ca) < len(cb) {
					return -1
				}
				return 1
			}
		}
		if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		a, b = a[na:], b[nb:]
	}
	return strings.Compare(a, b)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func span(s string, digits bool) int {
	i := 0
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return i
}

// kernelRelease returns the release ("6.1.0-56-cloud-amd64") of a bzImage:
// the first word of the setup header's kernel_version string, else the
// file name after "vmlinuz-".
func kernelRelease(path string, bzImage []byte) string {
	const offKernelVersion = 0x20e
	if len(bzImage) > offKernelVersion+2 && string(bzImage[offHeaderMagic:offHeaderMagic+4]) == "HdrS" {
		off := int(binary.LittleEndian.Uint16(bzImage[offKernelVersion:])) + 0x200
		if off > 0x200 && off < len(bzImage) {
			s := bzImage[off:min(len(bzImage), off+256)]
			if i := bytes.IndexAny(s, " \x00"); i > 0 {
				return string(s[:i])
			}
		}
	}
	return strings.TrimPrefix(filepath.Base(path), "vmlinuz-")
}

// checkStatic fails unless path is an ELF executable without an
// interpreter (a static binary that runs in an empty initramfs).
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// checkBusybox returns a *MissingError naming busybox-static unless path
// is a static busybox.
func checkBusybox(path string) error {
	if _, err := os.Stat(path); err != nil {
		return &MissingError{What: "static busybox " + path, Package: busyboxPackage, Err: err}
	}
	if err := checkStatic(path); err != nil {
		return &MissingError{What: "static busybox (" + path + " is not one)", Package: busyboxPackage, Err: err}
	}
	return nil
}

// findSbinTool returns an e2fsprogs executable such as mkfs.ext4, looking
// in $PATH and then in the sbin directories a non-root $PATH often lacks.
func findSbinTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &MissingError{What: name, Package: mkfsPackage}
}

// defaultCacheDir returns $XDG_CACHE_HOME/petty or ~/.cache/petty.
func defaultCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "petty"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", fmt.Errorf("image: set Options.CacheDir: %w", errNoDefaultDir)
	}
	return filepath.Join(home, ".cache", "petty"), nil
}
