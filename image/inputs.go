package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// formatVersion changes whenever the layout or contents Build produces
// change for the same inputs, so older cache entries are not reused.
const formatVersion = "petty-image-v4" // v4: module signatures stripped

// module is a kernel module file to put in the initramfs.
type module struct {
	relPath string   // as in modules.dep, compression suffix included
	when    []string // modules.load conditions (see moduleWant.device)
	raw     []byte   // the file as found on the host, maybe compressed
	sum     string   // sha256 of raw
}

// inputs are everything an image is built from, read once.
type inputs struct {
	kernelPath, release string
	kernel              []byte
	modules             []module
	busybox, agent      []byte
	mkfsPath            string // "" unless rootfs
	debugfsPath         string // "" unless rootfs
	toolsSum            string // of mkfs.ext4 and debugfs
	rootFSSizeMiB       int
}

// resolveInputs fills o's defaults and reads and checks every input.
func resolveInputs(o *Options) (*inputs, error) {
	if o.AgentPath == "" {
		return nil, ErrNoAgent
	}
	in := &inputs{}
	var err error
	if o.KernelPath == "" {
		if o.KernelPath, err = defaultKernel(); err != nil {
			return nil, err
		}
	}
	in.kernelPath = o.KernelPath
	if in.kernel, err = os.ReadFile(o.KernelPath); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &MissingError{What: "kernel " + o.KernelPath, Package: kernelPackage, Err: err}
		}
		return nil, fmt.Errorf("image: read kernel: %w", err)
	}
	in.release = kernelRelease(o.KernelPath, in.kernel)
	if o.ModulesDir == "" {
		o.ModulesDir = filepath.Join(modulesRoot, in.release)
	}
	if o.KernelSource {
		in.release = vmlinuxRelease(in.kernel) // built with CONFIG_MODULES off: no modules
	} else if in.modules, err = readModules(o.ModulesDir, in.release, o.wantModules()); err != nil {
		return nil, err
	}

	if o.BusyboxPath == "" {
		o.BusyboxPath = defaultBusybox
	}
	if err := checkBusybox(o.BusyboxPath); err != nil {
		return nil, err
	}
	if in.busybox, err = os.ReadFile(o.BusyboxPath); err != nil {
		return nil, fmt.Errorf("image: read busybox: %w", err)
	}

	if err := checkStatic(o.AgentPath); err != nil {
		return nil, fmt.Errorf("image: agent must be a static executable: %w", err)
	}
	if in.agent, err = os.ReadFile(o.AgentPath); err != nil {
		return nil, fmt.Errorf("image: read agent: %w", err)
	}

	if o.RootFS {
		if o.RootFSSizeMiB == 0 {
			o.RootFSSizeMiB = defaultRootFSSizeMiB
		}
		if o.RootFSSizeMiB < 8 {
			return nil, fmt.Errorf("image: RootFSSizeMiB %d is below the 8 MiB minimum", o.RootFSSizeMiB)
		}
		in.rootFSSizeMiB = o.RootFSSizeMiB
		if in.mkfsPath, err = findSbinTool(mkfsName); err != nil {
			return nil, err
		}
		if in.debugfsPath, err = findSbinTool(debugfsName); err != nil {
			return nil, err
		}
		for _, p := range []string{in.mkfsPath, in.debugfsPath} {
			sum, err := fileSum(p)
			if err != nil {
				return nil, fmt.Errorf("image: %w", err)
			}
			in.toolsSum += sum
		}
	}
	if o.CacheDir == "" {
		if o.CacheDir, err = defaultCacheDir(); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// readModules resolves wants in dir's modules.dep and reads them.
func readModules(dir, release string, wants []moduleWant) ([]module, error) {
	db, err := loadModuleDB(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &MissingError{What: "kernel modules " + dir, Package: "linux-image-" + release, Err: err}
		}
		return nil, fmt.Errorf("image: %w", err)
	}
	paths, err := db.resolve(wants)
	if err != nil {
		return nil, err
	}
	conds := db.conditions(wants)
	mods := make([]module, 0, len(paths))
	for _, p := range paths {
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
		if err != nil {
			return nil, fmt.Errorf("image: kernel module: %w", err)
		}
		// Decompressed only when an initramfs is written: a cache hit
		// hashes the files and no more.
		sum := sha256.Sum256(raw)
		mods = append(mods, module{relPath: p, when: conds[p], raw: raw, sum: hex.EncodeToString(sum[:])})
	}
	return mods, nil
}

// key is the hex SHA-256 of everything that determines Build's output.
func (in *inputs) key() string {
	h := sha256.New()
	field := func(name string, value string) {
		// Length-prefixed so that no two input sets hash alike.
		fmt.Fprintf(h, "%s %d %s\n", name, len(value), value)
	}
	sum := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	field("format", formatVersion)
	field("kernel", sum(in.kernel))
	field("release", in.release)
	for _, m := range in.modules {
		field("module", m.relPath+" "+m.sum+" "+strings.Join(m.when, ","))
	}
	field("busybox", sum(in.busybox))
	field("agent", sum(in.agent))
	field("init", initScript)
	field("applets", fmt.Sprint(busyboxApplets))
	if in.mkfsPath != "" {
		field("rootfs-size-mib", strconv.Itoa(in.rootFSSizeMiB))
		field("e2fsprogs", in.toolsSum)
		field("mke2fs.conf", mke2fsConf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// openFile opens a file fileSum reads; tests count its calls.
var openFile = os.Open

// fileSum returns the hex SHA-256 of the file at path.
func fileSum(path string) (string, error) {
	f, err := openFile(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
