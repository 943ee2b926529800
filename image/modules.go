package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrModuleNotFound is returned (wrapped) when a kernel module the guest
// needs is neither in modules.dep nor built into the kernel.
var ErrModuleNotFound = errors.New("image: kernel module not found")

// moduleWant is a kernel module the guest loads, by name.
type moduleWant struct {
	name     string
	optional bool // skipped when the kernel has no such module
	// device is the modules.load condition under which /init loads the
	// module and its dependencies: "" always, "virtio:ID" when a virtio
	// device with that id is present (ID as in
	// /sys/bus/virtio/devices/*/device), "pci:VENDOR" when a PCI device
	// of that vendor is (as in /sys/bus/pci/devices/*/vendor).
	device string
}

// Conditions of modules.load (see moduleWant.device).
const (
	loadAlways    = "always"
	virtioPCI     = "pci:0x1af4"    // Red Hat/virtio PCI vendor
	virtioNet     = "virtio:0x0001" // VIRTIO_ID_NET
	virtioBlock   = "virtio:0x0002" // VIRTIO_ID_BLOCK
	virtioConsole = "virtio:0x0003" // VIRTIO_ID_CONSOLE
	virtioVsock   = "virtio:0x0013" // VIRTIO_ID_VSOCK
	virtioFS      = "virtio:0x001a" // VIRTIO_ID_FS
)

// guestModules are the modules the initramfs may load, roots of the
// dependency walk; their dependencies are loaded first. The transports
// come first: /init looks for the devices the others drive once they are
// loaded.
var guestModules = []moduleWant{
	{name: "virtio_mmio"},
	{name: "virtio_pci", optional: true, device: virtioPCI},
	{name: "virtio_blk", device: virtioBlock},
	// The overlay root (petty.root= with petty.scratch=): ext4 for the base
	// and the scratch disk (built into Debian's cloud kernel), overlay to
	// stack them. Optional: kernels without them still boot initramfs-only.
	{name: "ext4", optional: true, device: virtioBlock},
	{name: "overlay", optional: true, device: virtioBlock},
	{name: "virtio_net", device: virtioNet},
	{name: "virtio_console", device: virtioConsole},
	{name: "vsock", device: virtioVsock},
	{name: "vmw_vsock_virtio_transport_common", device: virtioVsock},
	{name: "vmw_vsock_virtio_transport", device: virtioVsock},
	// Shared directories (vm.Share: virtio-fs, a container's root file
	// system under the containerd shim). Debian's cloud kernel has no 9p.
	{name: "virtiofs", optional: true, device: virtioFS},
}

// rootModules are the modules a store image with a root file system adds
// to guestModules: the read-only ext4 base and the overlay that makes it
// writable (ext4's own dependencies, jbd2, mbcache, crc16 and crc32c,
// follow from modules.dep; Debian's cloud kernel has ext4 built in). They
// load when the machine has a virtio block device.
var rootModules = []moduleWant{
	{name: "ext4", device: virtioBlock},
	{name: "overlay", device: virtioBlock},
}

// wantModules returns the modules the initramfs of o holds.
func (o *Options) wantModules() []moduleWant {
	if !o.rootModules {
		return guestModules
	}
	// guestModules lists the root modules as optional (a kernel without
	// them still boots initramfs-only); a store image with a root file
	// system requires them.
	want := slices.Clone(guestModules)
	for _, r := range rootModules {
		if i := slices.IndexFunc(want, func(m moduleWant) bool { return m.name == r.name }); i >= 0 {
			want[i] = r
		} else {
			want = append(want, r)
		}
	}
	return want
}

// moduleDB is a kernel's modules.dep and modules.builtin.
type moduleDB struct {
	paths   map[string]string   // module name -> path relative to the modules dir
	deps    map[string][]string // module name -> names it depends on, as listed
	builtin map[string]bool
}

// moduleName turns "kernel/drivers/virtio/virtio-mmio.ko.xz" into
// "virtio_mmio", the name modprobe and modules.dep use.
func moduleName(p string) string {
	base := filepath.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// parseModulesDep parses modules.dep ("path: dep dep ...") and, when
// builtin is not nil, modules.builtin (one path a line).
func parseModulesDep(dep, builtin io.Reader) (*moduleDB, error) {
	db := &moduleDB{paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(dep)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("image: modules.dep line %d: no colon in %q", line, text)
		}
		name := moduleName(mod)
		db.paths[name] = strings.TrimSpace(mod)
		var deps []string
		for _, d := range strings.Fields(rest) {
			deps = append(deps, moduleName(d))
		}
		db.deps[name] = deps
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("image: read modules.dep: %w", err)
	}
	if builtin != nil {
		sc := bufio.NewScanner(builtin)
		for sc.Scan() {
			if p := strings.TrimSpace(sc.Text()); p != "" {
				db.builtin[moduleName(p)] = true
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("image: read modules.builtin: %w", err)
		}
	}
	return db, nil
}

// resolve returns the modules.dep paths of wants and all their
// dependencies in an order insmod can load them: every module after the
// modules it depends on, otherwise in the order wanted. Built-in modules
// and missing optional ones are left out.
func (db *moduleDB) resolve(wants []moduleWant) ([]string, error) {
	var order []string
	state := map[string]int{} // 0 unvisited, 1 in progress, 2 done
	var visit func(name string, chain []string) error
	visit = func(name string, chain []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("image: modules.dep has a dependency cycle: %s -> %s", strings.Join(chain, " -> "), name)
		case 2:
			return nil
		}
		p, ok := db.paths[name]
		if !ok {
			if db.builtin[name] {
				state[name] = 2
				return nil
			}
			return fmt.Errorf("%w: %s (needed by %s)", ErrModuleNotFound, name, strings.Join(chain, " -> "))
		}
		state[name] = 1
		for _, d := range db.deps[name] {
			if err := visit(d, append(chain, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, w := range wants {
		_, present := db.paths[w.name]
		if !present && db.builtin[w.name] || !present && w.optional {
			continue
		}
		if !present {
			return nil, fmt.Errorf("%w: %s is neither in modules.dep nor modules.builtin", ErrModuleNotFound, w.name)
		}
		if err := visit(w.name, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// conditions returns, for every module path resolve(wants) returns, the
// modules.load conditions under which it is needed: the devices of the
// wants whose dependency closure holds it, in the order of wants, or
// [loadAlways] when a want without a device needs it.
func (db *moduleDB) conditions(wants []moduleWant) map[string][]string {
	conds := map[string][]string{}
	for _, w := range wants {
		seen := map[string]bool{}
		var walk func(name string)
		walk = func(name string) {
			if seen[name] {
				return
			}
			seen[name] = true
			p, ok := db.paths[name]
			if !ok {
				return // built in, or a missing optional module
			}
			for _, d := range db.deps[name] {
				walk(d)
			}
			switch c := conds[p]; {
			case w.device == "":
				conds[p] = []string{loadAlways}
			case len(c) == 1 && c[0] == loadAlways, slices.Contains(c, w.device):
			default:
				conds[p] = append(c, w.device)
			}
		}
		walk(w.name)
	}
	return conds
}

// loadModuleDB reads modules.dep and modules.builtin from a modules dir.
func loadModuleDB(dir string) (*moduleDB, error) {
	dep, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer dep.Close()
	builtin, err := os.Open(filepath.Join(dir, "modules.builtin"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if builtin != nil {
		defer builtin.Close()
		return parseModulesDep(dep, builtin)
	}
	return parseModulesDep(dep, nil)
}

// plainModulePath drops a compression suffix: "a/b.ko.xz" -> "a/b.ko".
func plainModulePath(p string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(p, ".ko"+ext) {
			return strings.TrimSuffix(p, ext)
		}
	}
	return p
}

// maxModuleSize bounds a decompressed module.
const maxModuleSize = 256 << 20

// decompressModule returns the plain ELF of a module file's contents,
// decompressing .ko.xz, .ko.zst and .ko.gz, since busybox insmod cannot
// always read compressed modules.
func decompressModule(p string, data []byte) ([]byte, error) {
	var r io.Reader
	switch {
	case strings.HasSuffix(p, ".ko"):
		return data, nil
	case strings.HasSuffix(p, ".ko.xz"):
		xr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("image: module %s: %w", p, err)
		}
		r = xr
	case strings.HasSuffix(p, ".ko.zst"):
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("image: module %s: %w", p, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(p, ".ko.gz"):
		gr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("image: module %s: %w", p, err)
		}
		r = gr
	default:
		return nil, fmt.Errorf("image: module %s: unknown file type", p)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("image: module %s: decompress: %w", p, err)
	}
	if len(out) > maxModuleSize {
		return nil, fmt.Errorf("image: module %s: larger than %d bytes", p, maxModuleSize)
	}
	if !bytes.HasPrefix(out, []byte("\x7fELF")) {
		return nil, fmt.Errorf("image: module %s: decompressed data is not ELF", p)
	}
	return out, nil
}
