package guest

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"strings"
)

// The initramfs's module list (see package image): one module per line in
// load order, "CONDITIONS PATH". CONDITIONS is "always" or a
// comma-separated list of devices, any of which needs the module:
// virtio:ID (ID as in /sys/bus/virtio/devices/*/device) or pci:VENDOR (as
// in /sys/bus/pci/devices/*/vendor).
const (
	modulesLoadPath = "/etc/petty/modules.load"
	loadAlways      = "always"
)

// moduleEntry is one modules.load line.
type moduleEntry struct {
	when []string // conditions, or [loadAlways]
	path string   // absolute path of the uncompressed .ko
}

// parseModulesLoad parses modules.load. Like /init.sh's "read -r when mod",
// blank lines and lines without a path are skipped.
func parseModulesLoad(r io.Reader) ([]moduleEntry, error) {
	var mods []moduleEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		when, p, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		mods = append(mods, moduleEntry{when: strings.Split(when, ","), path: p})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("agent: read modules.load: %w", err)
	}
	return mods, nil
}

// scanDevices returns the devices present in sys (a view of /sys) as
// modules.load conditions: "pci:VENDOR" and "virtio:ID".
func scanDevices(sys fs.FS) map[string]bool {
	devs := map[string]bool{}
	for _, d := range []struct{ prefix, pattern string }{
		{"pci:", "bus/pci/devices/*/vendor"},
		{"virtio:", "bus/virtio/devices/*/device"},
	} {
		files, _ := fs.Glob(sys, d.pattern)
		for _, f := range files {
			b, err := fs.ReadFile(sys, f)
			if id := strings.TrimSpace(string(b)); err == nil && id != "" {
				devs[d.prefix+id] = true
			}
		}
	}
	return devs
}

// needed reports whether a module with conditions when is needed given the
// devices present; devices is only called when the answer depends on them.
func needed(when []string, devices func() map[string]bool) bool {
	if len(when) == 1 && when[0] == loadAlways {
		return true
	}
	devs := devices()
	for _, c := range when {
		if devs[c] {
			return true
		}
	}
	return false
}

// moduleLoader loads one kernel module file; loading one already loaded
// is not an error.
type moduleLoader interface {
	loadModule(path string) error
}

// loadListedModules loads, in order, the modules of mods that the devices
// in sys need, as /init.sh does. The devices are listed again after each
// load: a transport module (virtio_mmio, virtio_pci) registers its devices
// while it loads. A failed load is logged and the rest still loaded. It
// returns the paths loaded.
func loadListedModules(mods []moduleEntry, sys fs.FS, l moduleLoader, log *slog.Logger) []string {
	var devs map[string]bool
	devices := func() map[string]bool {
		if devs == nil {
			devs = scanDevices(sys)
		}
		return devs
	}
	var loaded []string
	for _, m := range mods {
		if !needed(m.when, devices) {
			continue
		}
		if err := l.loadModule(m.path); err != nil {
			log.Warn("load kernel module", "module", path.Base(m.path), "err", err)
		} else {
			loaded = append(loaded, m.path)
		}
		devs = nil
	}
	return loaded
}
