package image

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pettyvm/petty/internal/fsutil"
)

// microvmFragment is the kernel config fragment merged over `make
// tinyconfig` for Options.KernelSource: the project's reference fragment,
// shared/reference/microvm-kernel.fragment.config (outside this module, so
// it is copied here to be embedded), followed by what images with a root
// file system need (overlayfs). It must keep every option of the reference
// with the reference's value (TestMicrovmFragmentCoversReference checks it
// when shared/ is there).
//
//go:embed microvm.config
var microvmFragment string

// Debian packages and host locations of the kernel source build; variables
// so tests can point them elsewhere.
var (
	kernelSourcePackage        = "linux-source-6.1"
	defaultKernelSourceTarball = "/usr/src/linux-source-6.1.tar.xz"
	kernelHeaderDir            = "/usr/include"
)

// kernelBuildTools are what compiling the kernel from source needs: an
// executable looked up in $PATH, or a header file (name ending in ".h")
// under kernelHeaderDir, and the Debian package providing it. libssl-dev
// and cpio are not needed: the fragment turns modules (and so module
// signing) and in-kernel headers off. OBJTOOL, which x86-64 always builds,
// needs libelf's headers.
var kernelBuildTools = []kernelBuildTool{
	{"make", "build-essential"},
	{"gcc", "build-essential"},
	{"ld", "build-essential"},
	{"stdio.h", "build-essential"},
	{"bc", "bc"},
	{"bison", "bison"},
	{"flex", "flex"},
	{"gelf.h", "libelf-dev"},
	{"tar", "tar"},
	{"xz", "xz-utils"},
}

// kernelBuildTool is a host tool or header the kernel build needs.
type kernelBuildTool struct {
	name string // executable, or header file when it ends in ".h"
	pkg  string // Debian package that provides it
}

const (
	// sourceKernelFormat changes whenever the way a kernel is built from
	// source changes, so older cached kernels are not reused.
	sourceKernelFormat = "petty-kernel-source-v2"
	// sourceKernelDirName is the directory under Options.CacheDir holding
	// kernels built from source, one directory per key.
	sourceKernelDirName = "kernel-source"
	// sourceKernelConfigName is the final .config stored next to vmlinux.
	sourceKernelConfigName = "config"
	// compileCoreMinutes is how long `make vmlinux` took here, in minutes
	// times cores (8.5 min on 2 cores), for the progress hint.
	compileCoreMinutes = 17.0
	// buildOutputTail is how many lines of make's output an error keeps.
	buildOutputTail = 30
)

// ErrKernelConfig is returned (wrapped) when the kernel configuration does
// not have every option the microVM fragment sets once `make olddefconfig`
// resolved it (an option whose dependencies are missing).
var ErrKernelConfig = errors.New("image: kernel config fragment did not apply")

// ErrKernelSourceOptions is returned (wrapped) for Options that cannot go
// with KernelSource.
var ErrKernelSourceOptions = errors.New("image: KernelSource excludes KernelPath and ModulesDir")

// ErrKernelNotCompiled is returned (wrapped) by Build with KernelSource
// and NoCompile, and by CachedSourceKernel, when the kernel is not in the
// cache yet; when its source is there, the error is a
// *KernelNotCompiledError.
var ErrKernelNotCompiled = errors.New("image: the kernel from source is not compiled yet")

// KernelNotCompiledError reports that the kernel compiled from Tarball is
// not in the cache, where it would be Vmlinux. It matches
// ErrKernelNotCompiled with errors.Is.
type KernelNotCompiledError struct {
	// Tarball is the kernel source tarball, absolute.
	Tarball string
	// Vmlinux is where the compiled kernel would be in the cache.
	Vmlinux string
}

// Error says which kernel is missing and where it would be.
func (e *KernelNotCompiledError) Error() string {
	return fmt.Sprintf("%v (from %s, into %s)", ErrKernelNotCompiled, e.Tarball, e.Vmlinux)
}

// Is reports whether target is ErrKernelNotCompiled.
func (e *KernelNotCompiledError) Is(target error) bool { return target == ErrKernelNotCompiled }

// sourceKernel returns the vmlinux compiled from o's kernel source tarball,
// building it into the cache unless an identical build is there (unless
// o.NoCompile). The key is cheap to compute, so that a cache hit costs a
// stat: the tarball's path, size and modification time, the fragment and
// the build's format; the build tools are looked for only to compile. It
// fills o.CacheDir's default. The cheap checks of the other inputs come
// first, so that a missing agent or busybox is not reported only after a
// long compile.
func sourceKernel(ctx context.Context, o *Options, progress func(string)) (string, error) {
	if err := checkSourceKernelOptions(o); err != nil {
		return "", err
	}
	e, err := findSourceKernel(o)
	if err != nil {
		return "", err
	}
	tarball, root, dir, vmlinux, key := e.tarball, e.root, e.dir, e.vmlinux, e.key
	if e.cached {
		progress("kernel from source: cached")
		o.Logger.Debug("image: source kernel cache hit", "dir", dir)
		return vmlinux, nil
	}
	if o.NoCompile {
		return "", &KernelNotCompiledError{Tarball: tarball, Vmlinux: vmlinux}
	}
	if err := checkKernelBuildHost(tarball); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("image: cache dir: %w", err)
	}
	work, err := os.MkdirTemp(root, ".build-"+key[:16]+"-")
	if err != nil {
		return "", fmt.Errorf("image: cache dir: %w", err)
	}
	defer os.RemoveAll(work) // the source tree, and the output on failure
	out, err := compileKernel(ctx, o.Logger, progress, tarball, work)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(out, 0o755); err != nil {
		return "", fmt.Errorf("image: cache: %w", err)
	}
	if err := os.Rename(out, dir); err != nil {
		// A concurrent build of the same key stored it first.
		if fi, statErr := os.Stat(vmlinux); statErr != nil || !fi.Mode().IsRegular() {
			return "", fmt.Errorf("image: cache: %w", err)
		}
	}
	o.Logger.Debug("image: source kernel built", "dir", dir)
	return vmlinux, nil
}

// sourceKernelEntry is where the kernel compiled from a tarball lives in
// the cache.
type sourceKernelEntry struct {
	tarball   string // absolute
	key       string
	root, dir string // the kernel-source cache, and the entry in it
	vmlinux   string
	cached    bool // vmlinux is there
}

// findSourceKernel locates o's source kernel in the cache, filling
// o.CacheDir's default, with a stat of the tarball and one of the entry.
// A missing tarball is a *MissingError naming every package missing to
// compile (wrapped in ErrKernelNotCompiled when o.NoCompile).
func findSourceKernel(o *Options) (sourceKernelEntry, error) {
	var e sourceKernelEntry
	tarball := o.KernelSourceTarball
	if tarball == "" {
		tarball = defaultKernelSourceTarball
	}
	tarball, err := filepath.Abs(tarball)
	if err != nil {
		return e, fmt.Errorf("image: kernel source: %w", err)
	}
	fi, err := os.Stat(tarball)
	if err != nil {
		if herr := checkKernelBuildHost(tarball); herr != nil {
			err = herr // names every missing package at once
		} else {
			err = fmt.Errorf("image: kernel source: %w", err)
		}
		if o.NoCompile {
			return e, fmt.Errorf("%w: %w", ErrKernelNotCompiled, err)
		}
		return e, err
	}
	if o.CacheDir == "" {
		if o.CacheDir, err = defaultCacheDir(); err != nil {
			return e, err
		}
	}
	e.tarball = tarball
	e.key = sourceKernelKey(tarballID(tarball, fi), microvmFragment)
	e.root = filepath.Join(o.CacheDir, sourceKernelDirName)
	e.dir = filepath.Join(e.root, e.key)
	e.vmlinux = filepath.Join(e.dir, vmlinuxName)
	vfi, err := os.Stat(e.vmlinux)
	e.cached = err == nil && vfi.Mode().IsRegular()
	return e, nil
}

// CachedSourceKernel returns the path of the kernel that Build with
// opts.KernelSource would boot, when it is compiled already, without
// building anything: a stat of the tarball and one of the cache entry. It
// fails with a *KernelNotCompiledError otherwise (an error wrapping
// ErrKernelNotCompiled and a *MissingError when the tarball is missing). Of opts it reads CacheDir and
// KernelSourceTarball.
func CachedSourceKernel(opts Options) (string, error) {
	o := opts
	o.NoCompile = true
	e, err := findSourceKernel(&o)
	if err != nil {
		return "", err
	}
	if !e.cached {
		return "", &KernelNotCompiledError{Tarball: e.tarball, Vmlinux: e.vmlinux}
	}
	return e.vmlinux, nil
}

// tarballID identifies a kernel source tarball without reading it: its
// absolute path, size and modification time (a Debian upgrade of
// linux-source-6.1 replaces the file, changing them).
func tarballID(path string, fi fs.FileInfo) string {
	return fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano())
}

// checkSourceKernelOptions fails for options that cannot go with
// KernelSource and checks the cheap inputs resolveInputs would reject.
func checkSourceKernelOptions(o *Options) error {
	if o.AgentPath == "" {
		return ErrNoAgent
	}
	if o.KernelPath != "" || o.ModulesDir != "" {
		return ErrKernelSourceOptions
	}
	if err := checkStatic(o.AgentPath); err != nil {
		return fmt.Errorf("image: agent must be a static executable: %w", err)
	}
	busybox := o.BusyboxPath
	if busybox == "" {
		busybox = defaultBusybox
	}
	if err := checkBusybox(busybox); err != nil {
		return err
	}
	if o.RootFS {
		for _, name := range []string{mkfsName, debugfsName} {
			if _, err := findSbinTool(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkKernelBuildHost returns one *MissingError naming every package
// missing to build a kernel from tarball, or nil.
func checkKernelBuildHost(tarball string) error {
	var what, pkgs []string
	var cause error
	if _, err := os.Stat(tarball); err != nil {
		what = append(what, "kernel source "+tarball)
		pkgs = append(pkgs, kernelSourcePackage)
		cause = err
	}
	var tools []string
	for _, t := range kernelBuildTools {
		var err error
		if strings.HasSuffix(t.name, ".h") {
			_, err = os.Stat(filepath.Join(kernelHeaderDir, t.name))
		} else {
			_, err = exec.LookPath(t.name)
		}
		if err == nil {
			continue
		}
		tools = append(tools, t.name)
		if !slices.Contains(pkgs, t.pkg) {
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(tools) > 0 {
		what = append(what, "kernel build tools ("+strings.Join(tools, ", ")+")")
	}
	if len(pkgs) == 0 {
		return nil
	}
	return &MissingError{What: strings.Join(what, " and "), Package: strings.Join(pkgs, " "), Err: cause}
}

// sourceKernelKey is the hex SHA-256 naming a kernel built from the
// tarball tarballID identifies, with fragment merged over tinyconfig.
func sourceKernelKey(tarballID, fragment string) string {
	h := newKeyHash()
	h.field("format", sourceKernelFormat)
	h.field("arch", runtime.GOARCH)
	h.field("tarball", tarballID)
	h.field("fragment", fragment)
	return h.sum()
}

// compileKernel extracts tarball into work/src, configures it (tinyconfig,
// then the fragment, then olddefconfig) and compiles vmlinux, and returns
// work/out holding vmlinux and its config.
func compileKernel(ctx context.Context, log *slog.Logger, progress func(string), tarball, work string) (string, error) {
	src := filepath.Join(work, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		return "", fmt.Errorf("image: kernel source: %w", err)
	}
	progress("kernel from source: extracting " + filepath.Base(tarball) + " (≈15 s)")
	if err := runBuildStep(ctx, log, work, "tar", "-xJf", tarball, "-C", src, "--strip-components=1"); err != nil {
		return "", err
	}

	progress("kernel from source: configuring (tinyconfig + microvm.config)")
	if err := runBuildStep(ctx, log, src, "make", "tinyconfig"); err != nil {
		return "", err
	}
	cfgPath := filepath.Join(src, ".config")
	base, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", fmt.Errorf("image: kernel config: %w", err)
	}
	if err := os.WriteFile(cfgPath, []byte(mergeConfig(string(base), microvmFragment)), 0o644); err != nil {
		return "", fmt.Errorf("image: kernel config: %w", err)
	}
	if err := runBuildStep(ctx, log, src, "make", "olddefconfig"); err != nil {
		return "", err
	}
	final, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", fmt.Errorf("image: kernel config: %w", err)
	}
	if bad := configMismatches(string(final), microvmFragment); len(bad) > 0 {
		return "", fmt.Errorf("%w: %s", ErrKernelConfig, strings.Join(bad, ", "))
	}

	n := runtime.NumCPU()
	progress(fmt.Sprintf("kernel from source: compiling (%s on %d cores)", compileEstimate(n), n))
	began := time.Now()
	if err := runBuildStep(ctx, log, src, "make", "-j"+strconv.Itoa(n), "vmlinux"); err != nil {
		return "", err
	}
	log.Debug("image: kernel compiled", "took", time.Since(began).Round(time.Second), "cores", n)

	out := filepath.Join(work, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", fmt.Errorf("image: kernel source: %w", err)
	}
	for name, from := range map[string]string{vmlinuxName: "vmlinux", sourceKernelConfigName: ".config"} {
		if err := fsutil.CopyNew(filepath.Join(out, name), filepath.Join(src, from), 0o644); err != nil {
			return "", fmt.Errorf("image: kernel source: %w", err)
		}
	}
	return out, nil
}

// compileEstimate is the progress hint for compiling on n cores.
func compileEstimate(n int) string {
	return fmt.Sprintf("≈%d min", max(1, int(math.Round(compileCoreMinutes/float64(max(n, 1))))))
}

// buildEnv is the environment of the kernel build: this process's, less
// what would redirect or cross-compile the build or join an outer make's
// jobserver, plus fixed build user, host and time stamp.
func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "KBUILD_"), strings.HasPrefix(k, "KCONFIG_"),
			k == "ARCH", k == "CROSS_COMPILE", k == "O", k == "CC", k == "LD", k == "LLVM",
			k == "MAKEFLAGS", k == "MFLAGS", k == "MAKELEVEL", k == "LC_ALL":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"LC_ALL=C",
		"KBUILD_BUILD_USER=petty",
		"KBUILD_BUILD_HOST=petty",
		"KBUILD_BUILD_VERSION=1",
		"KBUILD_BUILD_TIMESTAMP=1970-01-01",
	)
}

// runBuildStep runs name with args in dir, in its own process group (so
// that a cancelled ctx ends make and every compiler it started), logging
// each line of its output at debug level. A failure's error ends with the
// output's last lines.
func runBuildStep(ctx context.Context, log *slog.Logger, dir, name string, args ...string) error {
	lw := &lineLogger{log: log, msg: "image: " + name}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = buildEnv()
	cmd.Stdout = lw
	cmd.Stderr = lw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	lw.flush()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("image: kernel source: %s %s: %w\n%s", name, strings.Join(args, " "), err, strings.Join(lw.tail, "\n"))
	}
	return nil
}

// lineLogger is an io.Writer that logs each line written to it at debug
// level and keeps the last buildOutputTail lines.
type lineLogger struct {
	log     *slog.Logger
	msg     string
	mu      sync.Mutex
	partial []byte
	tail    []string
}

var _ io.Writer = (*lineLogger)(nil)

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// flush logs an unterminated last line.
func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(string(l.partial))
		l.partial = nil
	}
}

func (l *lineLogger) line(s string) {
	s = strings.TrimRight(s, "\r")
	l.log.Debug(l.msg, "out", s)
	if len(l.tail) == buildOutputTail {
		l.tail = append(l.tail[:0], l.tail[1:]...)
	}
	l.tail = append(l.tail, s)
}

// vmlinuxRelease returns the release ("6.1.158") in an ELF vmlinux's
// "Linux version RELEASE (...)" banner, or "vmlinux" when there is none.
func vmlinuxRelease(vmlinux []byte) string {
	const banner = "Linux version "
	i := bytes.Index(vmlinux, []byte(banner))
	if i < 0 {
		return vmlinuxName
	}
	s := vmlinux[i+len(banner) : min(len(vmlinux), i+len(banner)+128)]
	if j := bytes.IndexAny(s, " \x00\n"); j > 0 {
		return string(s[:j])
	}
	return vmlinuxName
}

// kernelELF returns the ELF vmlinux of kernel: kernel itself when it was
// compiled from source (make's vmlinux), else extracted from the bzImage.
func kernelELF(fromSource bool, kernel []byte) ([]byte, error) {
	if fromSource {
		return kernel, nil
	}
	return ExtractVmlinux(kernel)
}
