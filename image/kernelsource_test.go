package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMergeConfig(t *testing.T) {
	base := strings.Join([]string{
		"#",
		"# Automatically generated file; DO NOT EDIT.",
		"CONFIG_CC_VERSION_TEXT=\"gcc\"",
		"# CONFIG_VIRTIO is not set",
		"CONFIG_MODULES=y",
		"CONFIG_NR_CPUS=64",
		"CONFIG_KEEP=y",
		"",
	}, "\n")
	fragment := strings.Join([]string{
		"# comment",
		"CONFIG_VIRTIO=y",
		"CONFIG_MODULES=n",
		"CONFIG_NR_CPUS=4",
		"CONFIG_NEW=y",
		"# CONFIG_GONE is not set",
		"",
	}, "\n")
	want := strings.Join([]string{
		"#",
		"# Automatically generated file; DO NOT EDIT.",
		"CONFIG_CC_VERSION_TEXT=\"gcc\"",
		"CONFIG_KEEP=y",
		"CONFIG_VIRTIO=y",
		"# CONFIG_MODULES is not set",
		"CONFIG_NR_CPUS=4",
		"CONFIG_NEW=y",
		"# CONFIG_GONE is not set",
		"",
	}, "\n")
	if diff := cmp.Diff(want, mergeConfig(base, fragment)); diff != "" {
		t.Errorf("mergeConfig (-want +got):\n%s", diff)
	}
	// Merging twice changes nothing more.
	if diff := cmp.Diff(want, mergeConfig(want, fragment)); diff != "" {
		t.Errorf("mergeConfig again (-want +got):\n%s", diff)
	}
}

// A choice member the fragment turns on must come after the member base
// had on: Kconfig keeps the last of two set to y.
func TestMergeConfigChoice(t *testing.T) {
	base := "# CONFIG_KERNEL_GZIP is not set\n# CONFIG_KERNEL_BZIP2 is not set\nCONFIG_KERNEL_XZ=y\n"
	got := mergeConfig(base, "CONFIG_KERNEL_GZIP=y\n")
	want := "# CONFIG_KERNEL_BZIP2 is not set\nCONFIG_KERNEL_XZ=y\nCONFIG_KERNEL_GZIP=y\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mergeConfig (-want +got):\n%s", diff)
	}
}

func TestConfigLine(t *testing.T) {
	for _, tt := range []struct {
		line, name, value string
		ok                bool
	}{
		{"CONFIG_A=y", "CONFIG_A", "y", true},
		{"CONFIG_S=\"a=b\"", "CONFIG_S", "\"a=b\"", true},
		{"# CONFIG_A is not set", "CONFIG_A", "n", true},
		{"  CONFIG_A=m  ", "CONFIG_A", "m", true},
		{"# a comment", "", "", false},
		{"# Kernel config is not set", "", "", false},
		{"", "", "", false},
		{"FOO=y", "", "", false},
	} {
		name, value, ok := configLine(tt.line)
		if name != tt.name || value != tt.value || ok != tt.ok {
			t.Errorf("configLine(%q) = %q, %q, %v; want %q, %q, %v", tt.line, name, value, ok, tt.name, tt.value, tt.ok)
		}
	}
}

func TestConfigMismatches(t *testing.T) {
	fragment := "CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=4\nCONFIG_D=n\n"
	for _, tt := range []struct {
		name, config string
		want         []string
	}{
		{"all applied", "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=4\n", nil},
		{"missing y", "# CONFIG_B is not set\nCONFIG_C=4\n", []string{"CONFIG_A=y (got n)"}},
		{"dependency kept it on", "CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=4\n", []string{"CONFIG_B=n (got y)"}},
		{"value", "CONFIG_A=y\nCONFIG_C=8\n", []string{"CONFIG_C=4 (got 8)"}},
		{"module", "CONFIG_A=m\nCONFIG_C=4\nCONFIG_D=m\n", []string{"CONFIG_A=y (got m)", "CONFIG_D=n (got m)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, configMismatches(tt.config, fragment)); diff != "" {
				t.Errorf("configMismatches (-want +got):\n%s", diff)
			}
		})
	}
}

// The fragment must keep what the guest relies on: no modules (the
// initramfs has none), Firecracker's command-line virtio-mmio devices, and
// the devices the agent talks over.
func TestMicrovmFragment(t *testing.T) {
	_, values := parseConfig(microvmFragment)
	for name, want := range map[string]string{
		"CONFIG_MODULES":                     "n",
		"CONFIG_VIRTIO_MMIO":                 "y",
		"CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES": "y",
		"CONFIG_VIRTIO_PCI":                  "y",
		"CONFIG_VIRTIO_CONSOLE":              "y",
		"CONFIG_VIRTIO_BLK":                  "y",
		"CONFIG_VIRTIO_VSOCKETS":             "y",
		"CONFIG_EXT4_FS":                     "y",
		"CONFIG_SERIAL_8250_CONSOLE":         "y",
		"CONFIG_DEVTMPFS":                    "y",
		"CONFIG_BLK_DEV_INITRD":              "y",
		// The overlay root of an image with a root file system.
		"CONFIG_OVERLAY_FS": "y",
	} {
		if got := values[name]; got != want {
			t.Errorf("microvm.config: %s=%q, want %q", name, got, want)
		}
	}
}

// microvm.config is a superset of the project's reference fragment, which
// lives outside the module (in shared/ beside the repository): every option
// the reference sets, with the reference's value (none overridden below),
// the reference's text first.
func TestMicrovmFragmentCoversReference(t *testing.T) {
	ref := filepath.Join("..", "..", "shared", "reference", "microvm-kernel.fragment.config")
	b, err := os.ReadFile(ref)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no %s (shared/ is not beside this checkout)", ref)
	}
	if err != nil {
		t.Fatal(err)
	}
	refNames, refValues := parseConfig(string(b))
	_, values := parseConfig(microvmFragment) // the last value of each option
	for _, name := range refNames {
		if got, ok := values[name]; !ok || got != refValues[name] {
			t.Errorf("image/microvm.config: %s=%q, the reference %s has %q", name, got, ref, refValues[name])
		}
	}
	if !strings.HasPrefix(microvmFragment, string(b)) {
		t.Errorf("image/microvm.config does not start with %s's text: copy it again and add our options below", ref)
	}
}

func TestSourceKernelKey(t *testing.T) {
	base := sourceKernelKey("/src/linux.tar.xz 100 1", "CONFIG_A=y\n")
	if again := sourceKernelKey("/src/linux.tar.xz 100 1", "CONFIG_A=y\n"); again != base {
		t.Errorf("key not stable: %s then %s", base, again)
	}
	seen := map[string]string{base: "base"}
	for name, key := range map[string]string{
		"tarball":  sourceKernelKey("/src/linux.tar.xz 101 1", "CONFIG_A=y\n"),
		"fragment": sourceKernelKey("/src/linux.tar.xz 100 1", "CONFIG_A=n\n"),
		"shifted":  sourceKernelKey("/src/linux.tar.xz 100", " 1CONFIG_A=y\n"),
	} {
		if prev, dup := seen[key]; dup {
			t.Errorf("changing the %s gives the key of %s", name, prev)
		}
		seen[key] = name
	}
	if len(base) != 64 {
		t.Errorf("key %q is not a hex SHA-256", base)
	}
}

func TestTarballID(t *testing.T) {
	p := filepath.Join(t.TempDir(), "linux.tar.xz")
	writeFile(t, p, []byte("v1"))
	stamp := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := os.Chtimes(p, stamp, stamp); err != nil {
		t.Fatal(err)
	}
	id := func() string {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return tarballID(p, fi)
	}
	first := id()
	if want := fmt.Sprintf("%s 2 %d", p, stamp.UnixNano()); first != want {
		t.Errorf("tarballID = %q, want %q", first, want)
	}
	if err := os.Chtimes(p, stamp, stamp.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if id() == first {
		t.Error("tarballID did not change with the modification time")
	}
}

// fakeBuildHost points the kernel build's host lookups at a temporary
// directory: an empty $PATH and header directory, and a tarball path that
// does not exist. It returns the bin directory, the header directory and
// the tarball path.
func fakeBuildHost(t *testing.T) (bin, include, tarball string) {
	dir := t.TempDir()
	bin, include = filepath.Join(dir, "bin"), filepath.Join(dir, "include")
	for _, d := range []string{bin, include} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	old := kernelHeaderDir
	kernelHeaderDir = include
	t.Cleanup(func() { kernelHeaderDir = old })
	return bin, include, filepath.Join(dir, "linux-source-6.1.tar.xz")
}

// provide makes every kernel build tool but the skipped ones exist.
func provide(t *testing.T, bin, include string, skip ...string) {
	t.Helper()
	for _, tool := range kernelBuildTools {
		if contains := strings.Contains(" "+strings.Join(skip, " ")+" ", " "+tool.name+" "); contains {
			continue
		}
		dir, mode := bin, os.FileMode(0o755)
		if strings.HasSuffix(tool.name, ".h") {
			dir, mode = include, 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, tool.name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckKernelBuildHost(t *testing.T) {
	for _, tt := range []struct {
		name       string
		tarball    bool
		skip       []string
		wantPkgs   string
		wantWhat   []string
		notExistOK bool
	}{
		{name: "all there", tarball: true},
		{
			name: "nothing there", skip: []string{"make", "gcc", "ld", "stdio.h", "bc", "bison", "flex", "gelf.h", "tar", "xz"},
			wantPkgs: "linux-source-6.1 build-essential bc bison flex libelf-dev tar xz-utils",
			wantWhat: []string{"kernel source", "make, gcc, ld, stdio.h, bc, bison, flex, gelf.h, tar, xz"}, notExistOK: true,
		},
		{name: "tarball only", wantPkgs: "linux-source-6.1", wantWhat: []string{"kernel source"}, notExistOK: true},
		{
			name: "some tools", tarball: true, skip: []string{"bison", "flex", "gelf.h"},
			wantPkgs: "bison flex libelf-dev", wantWhat: []string{"kernel build tools (bison, flex, gelf.h)"},
		},
		{name: "compiler", tarball: true, skip: []string{"gcc", "stdio.h"}, wantPkgs: "build-essential", wantWhat: []string{"gcc, stdio.h"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin, include, tarball := fakeBuildHost(t)
			provide(t, bin, include, tt.skip...)
			if tt.tarball {
				if err := os.WriteFile(tarball, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := checkKernelBuildHost(tarball)
			if tt.wantPkgs == "" {
				if err != nil {
					t.Fatalf("checkKernelBuildHost = %v, want nil", err)
				}
				return
			}
			var me *MissingError
			if !errors.As(err, &me) {
				t.Fatalf("checkKernelBuildHost = %v, want a *MissingError", err)
			}
			if me.Package != tt.wantPkgs {
				t.Errorf("Package = %q, want %q", me.Package, tt.wantPkgs)
			}
			for _, w := range tt.wantWhat {
				if !strings.Contains(me.What, w) {
					t.Errorf("What = %q, want it to mention %q", me.What, w)
				}
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExistOK {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tt.notExistOK)
			}
			if !strings.Contains(err.Error(), "apt-get install "+tt.wantPkgs) {
				t.Errorf("error %q does not say `apt-get install %s`", err, tt.wantPkgs)
			}
		})
	}
}

// Build with KernelSource reports what is missing at once, before any
// compiling, and rejects options it cannot honour.
func TestBuildKernelSourceErrors(t *testing.T) {
	agent := standinAgent(t)
	if err := checkBusybox(defaultBusybox); err != nil {
		t.Skipf("%v", err)
	}
	t.Run("no agent", func(t *testing.T) {
		_, err := Build(t.Context(), Options{KernelSource: true, CacheDir: t.TempDir()})
		if !errors.Is(err, ErrNoAgent) {
			t.Errorf("Build = %v, want ErrNoAgent", err)
		}
	})
	t.Run("with KernelPath", func(t *testing.T) {
		_, err := Build(t.Context(), Options{KernelSource: true, KernelPath: "/boot/vmlinuz", AgentPath: agent, CacheDir: t.TempDir()})
		if !errors.Is(err, ErrKernelSourceOptions) {
			t.Errorf("Build = %v, want ErrKernelSourceOptions", err)
		}
	})
	t.Run("missing packages", func(t *testing.T) {
		bin, include, tarball := fakeBuildHost(t)
		provide(t, bin, include, "bison", "gelf.h")
		var steps []string
		cache := t.TempDir()
		_, err := Build(t.Context(), Options{
			KernelSource: true, KernelSourceTarball: tarball, AgentPath: agent, CacheDir: cache,
			Progress: func(s string) { steps = append(steps, s) },
		})
		var me *MissingError
		if !errors.As(err, &me) || me.Package != "linux-source-6.1 bison libelf-dev" {
			t.Fatalf("Build = %v, want a *MissingError naming linux-source-6.1 bison libelf-dev", err)
		}
		if diff := cmp.Diff([]string{"resolve inputs"}, steps); diff != "" {
			t.Errorf("steps (-want +got):\n%s", diff)
		}
		if entries, _ := os.ReadDir(cache); len(entries) != 0 {
			t.Errorf("cache dir has %d entries after a failed check", len(entries))
		}
	})
}

// cachedSourceKernel makes a tarball and stores a fake vmlinux for it in
// a cache, as a previous compile would have, and returns the tarball, the
// cache directory and the vmlinux's contents.
func cachedSourceKernel(t *testing.T) (tarball, cache string, vmlinux []byte) {
	t.Helper()
	dir := t.TempDir()
	tarball = filepath.Join(dir, "linux.tar.xz")
	writeFile(t, tarball, []byte("not really a kernel source"))
	fi, err := os.Stat(tarball)
	if err != nil {
		t.Fatal(err)
	}
	cache = filepath.Join(dir, "cache")
	vmlinux = append([]byte("\x7fELF fake vmlinux "), []byte("Linux version 6.1.999-petty (x@y) #1\x00")...)
	writeFile(t, filepath.Join(cache, sourceKernelDirName, sourceKernelKey(tarballID(tarball, fi), microvmFragment), vmlinuxName), vmlinux)
	return tarball, cache, vmlinux
}

// countOpens makes fileSum's opens of path fail and counts them.
func countOpens(t *testing.T, path string) *atomic.Int32 {
	t.Helper()
	var n atomic.Int32
	old := openFile
	openFile = func(name string) (*os.File, error) {
		if name == path {
			n.Add(1)
			return nil, fmt.Errorf("test: %s must not be read on a cache hit", name)
		}
		return old(name)
	}
	t.Cleanup(func() { openFile = old })
	return &n
}

// A cached source kernel is used without compiling, without reading the
// tarball and without any build tool: $PATH is empty.
func TestSourceKernelCached(t *testing.T) {
	agent := standinAgent(t)
	if err := checkBusybox(defaultBusybox); err != nil {
		t.Skipf("%v", err)
	}
	tarball, cache, fake := cachedSourceKernel(t)
	opens := countOpens(t, tarball)
	t.Setenv("PATH", "")
	for _, noCompile := range []bool{false, true} {
		var steps []string
		img, err := Build(context.Background(), Options{
			KernelSource: true, NoCompile: noCompile, KernelSourceTarball: tarball, AgentPath: agent, CacheDir: cache,
			Progress: func(s string) { steps = append(steps, s) },
			Logger:   slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatalf("NoCompile %v: %v", noCompile, err)
		}
		want := []string{"resolve inputs", "kernel from source: cached", "extract kernel", "initramfs", "store"}
		if noCompile { // the image itself is cached by now
			want = []string{"resolve inputs", "kernel from source: cached", "cached"}
		}
		if diff := cmp.Diff(want, steps); diff != "" {
			t.Errorf("NoCompile %v: steps (-want +got):\n%s", noCompile, diff)
		}
		got, err := os.ReadFile(img.Kernel)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(fake) {
			t.Errorf("image kernel is not the cached source kernel")
		}
		if noCompile {
			continue
		}
		initrd, err := os.ReadFile(img.Initrd)
		if err != nil {
			t.Fatal(err)
		}
		entries := map[string]string{}
		for _, e := range parseNewc(t, initrd) {
			entries[e.Name] = e.Data
		}
		for name, data := range entries {
			if strings.HasPrefix(name, "lib/modules/") {
				t.Errorf("initramfs has module %s", name)
			}
			if name == modulesLoadPath && data != "" {
				t.Errorf("modules.load = %q, want empty", data)
			}
		}
		if _, ok := entries[modulesLoadPath]; !ok {
			t.Errorf("initramfs lacks %s", modulesLoadPath)
		}
	}
	if n := opens.Load(); n != 0 {
		t.Errorf("the tarball was opened %d times on cache hits, want 0", n)
	}
}

// With NoCompile and no cached kernel Build fails at once with
// ErrKernelNotCompiled: no tool looked for or run, no tarball read,
// nothing written to the cache.
func TestSourceKernelNoCompile(t *testing.T) {
	agent := standinAgent(t)
	if err := checkBusybox(defaultBusybox); err != nil {
		t.Skipf("%v", err)
	}
	tarball, _, _ := cachedSourceKernel(t)
	opens := countOpens(t, tarball)
	t.Setenv("PATH", "")
	cache := t.TempDir() // another cache: the kernel is not there
	began := time.Now()
	_, err := Build(t.Context(), Options{KernelSource: true, NoCompile: true, KernelSourceTarball: tarball, AgentPath: agent, CacheDir: cache})
	if !errors.Is(err, ErrKernelNotCompiled) {
		t.Fatalf("Build = %v, want ErrKernelNotCompiled", err)
	}
	var me *MissingError
	if errors.As(err, &me) {
		t.Errorf("Build = %v: looked for build tools without compiling", err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Build took %v, want well under a second", took)
	}
	if n := opens.Load(); n != 0 {
		t.Errorf("the tarball was opened %d times, want 0", n)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("cache dir has %d entries after a refused compile", len(entries))
	}
}

func TestVmlinuxRelease(t *testing.T) {
	for in, want := range map[string]string{
		"\x7fELF...Linux version 6.1.158 (petty@petty) (gcc) #1 SMP\x00": "6.1.158",
		"Linux version 6.1.0-41-cloud-amd64\x00":                         "6.1.0-41-cloud-amd64",
		"no banner":                                                      "vmlinux",
	} {
		if got := vmlinuxRelease([]byte(in)); got != want {
			t.Errorf("vmlinuxRelease(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKernelELF(t *testing.T) {
	elf := []byte("\x7fELF")
	if got, err := kernelELF(true, elf); err != nil || string(got) != string(elf) {
		t.Errorf("kernelELF(source) = %q, %v; want the ELF as is", got, err)
	}
	if _, err := kernelELF(false, elf); !errors.Is(err, ErrNotVmlinux) {
		t.Errorf("kernelELF(bzImage) of an ELF = %v, want ErrNotVmlinux", err)
	}
}

func TestLineLogger(t *testing.T) {
	var logged []string
	h := &captureHandler{lines: &logged}
	l := &lineLogger{log: slog.New(h), msg: "make"}
	for _, chunk := range []string{"CC a.o\nCC b", ".o\n", "LD vmlinux"} {
		if _, err := l.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	l.flush()
	want := []string{"CC a.o", "CC b.o", "LD vmlinux"}
	if diff := cmp.Diff(want, logged); diff != "" {
		t.Errorf("logged (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, l.tail); diff != "" {
		t.Errorf("tail (-want +got):\n%s", diff)
	}
	for i := range 2 * buildOutputTail {
		l.line(strings.Repeat("x", i))
	}
	if len(l.tail) != buildOutputTail || l.tail[buildOutputTail-1] != strings.Repeat("x", 2*buildOutputTail-1) {
		t.Errorf("tail keeps %d lines ending %q, want the last %d", len(l.tail), l.tail[len(l.tail)-1], buildOutputTail)
	}
}

func TestCompileEstimate(t *testing.T) {
	for n, want := range map[int]string{1: "≈17 min", 2: "≈9 min", 16: "≈1 min", 64: "≈1 min", 0: "≈17 min"} {
		if got := compileEstimate(n); got != want {
			t.Errorf("compileEstimate(%d) = %q, want %q", n, got, want)
		}
	}
}

// captureHandler records the "out" attribute of every record.
type captureHandler struct{ lines *[]string }

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "out" {
			*h.lines = append(*h.lines, a.Value.String())
		}
		return true
	})
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func TestCachedSourceKernel(t *testing.T) {
	tarball, cache, _ := cachedSourceKernel(t)
	opens := countOpens(t, tarball)
	t.Setenv("PATH", "")
	got, err := CachedSourceKernel(Options{KernelSourceTarball: tarball, CacheDir: cache})
	if err != nil {
		t.Fatalf("cached: %v", err)
	}
	if filepath.Dir(filepath.Dir(got)) != filepath.Join(cache, sourceKernelDirName) || filepath.Base(got) != vmlinuxName {
		t.Errorf("CachedSourceKernel = %s, want a vmlinux under %s", got, filepath.Join(cache, sourceKernelDirName))
	}
	other := t.TempDir()
	_, err = CachedSourceKernel(Options{KernelSourceTarball: tarball, CacheDir: other})
	var nc *KernelNotCompiledError
	if !errors.Is(err, ErrKernelNotCompiled) || !errors.As(err, &nc) {
		t.Fatalf("another cache: %v, want a *KernelNotCompiledError matching ErrKernelNotCompiled", err)
	}
	if want := filepath.Join(other, sourceKernelDirName, filepath.Base(filepath.Dir(got)), vmlinuxName); nc.Vmlinux != want || nc.Tarball != tarball {
		t.Errorf("KernelNotCompiledError = %+v, want Vmlinux %s, Tarball %s", nc, want, tarball)
	}
	var me *MissingError
	_, err = CachedSourceKernel(Options{KernelSourceTarball: tarball + ".missing", CacheDir: cache})
	if !errors.Is(err, ErrKernelNotCompiled) || !errors.As(err, &me) {
		t.Errorf("no tarball: %v, want ErrKernelNotCompiled and a *MissingError", err)
	}
	if n := opens.Load(); n != 0 {
		t.Errorf("the tarball was opened %d times, want 0", n)
	}
}
