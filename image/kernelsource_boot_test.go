package image_test

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/vm"
)

// Environment of TestKernelSourceBuild.
const (
	// kernelSourceEnv=1 runs it: it compiles a kernel (≈9 min on 2 cores).
	kernelSourceEnv = "PETTY_TEST_KERNEL_SOURCE"
	// kernelSourceCacheEnv, if set, is the cache directory to build into
	// and reuse (default a fresh temporary one, so the test compiles).
	kernelSourceCacheEnv = "PETTY_TEST_KERNEL_SOURCE_CACHE"
	kernelSourceFix      = "apt-get install linux-source-6.1 build-essential bc bison flex libelf-dev busybox-static qemu-system-x86"
)

// TestKernelSourceBuild compiles the microVM kernel from Debian's
// linux-source-6.1, checks that a second Build reuses it, and boots it with
// the image's module-free initramfs under QEMU TCG (-M microvm) through
// package vm, up to the agent answering an exec of `uname -r`. It logs the
// boot times to agent-ready next to the Debian cloud kernel's, when that is
// installed.
func TestKernelSourceBuild(t *testing.T) {
	if os.Getenv(kernelSourceEnv) != "1" {
		t.Skipf("compiles Debian's linux-source-6.1 (≈9 min on 2 cores) and boots it: set %s=1 (needs %s)", kernelSourceEnv, kernelSourceFix)
	}
	if _, err := qemu.FindBinary(); err != nil {
		t.Skipf("qemu-system-x86_64 not found: %s", kernelSourceFix)
	}
	agentPath := buildAgent(t)
	cache := os.Getenv(kernelSourceCacheEnv)
	if cache == "" {
		cache = t.TempDir()
	}

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Minute)
	defer cancel()
	rec := &stepRecorder{}
	opts := image.Options{KernelSource: true, RootFS: true, AgentPath: agentPath, CacheDir: cache, Progress: rec.step}
	img, err := image.Build(ctx, opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	rec.step("done")
	for _, s := range rec.timed() {
		t.Logf("build step %s", s)
	}
	checkSourceKernelImage(t, img)

	rec2 := &stepRecorder{}
	opts.Progress = rec2.step
	again, err := image.Build(ctx, opts)
	if err != nil {
		t.Fatalf("second Build: %v", err)
	}
	if !again.Cached || again.Kernel != img.Kernel || !slices.Contains(rec2.names(), "kernel from source: cached") {
		t.Errorf("second Build: Cached=%v, kernel %s (first %s), steps %q; want a cache hit without compiling", again.Cached, again.Kernel, img.Kernel, rec2.names())
	}

	var sourceBoots, cloudBoots []time.Duration
	for i := range 3 {
		d, release := bootToAgent(t, img, i == 0, bootInitramfs)
		sourceBoots = append(sourceBoots, d)
		if !strings.HasPrefix(release, "6.1") || strings.Contains(release, "cloud") {
			t.Errorf("guest uname -r = %q, want the 6.1 kernel built from source", release)
		}
	}
	t.Logf("kernel from source: boot to agent ready under QEMU TCG: %v (median of %v)", median(sourceBoots), sourceBoots)

	// As under Firecracker: no initramfs, the kernel mounts the root file
	// system itself and runs its /sbin/init, the agent, which finds where to
	// serve on the kernel command line.
	d, release := bootToAgent(t, img, false, bootRootFS)
	if !strings.HasPrefix(release, "6.1") {
		t.Errorf("guest uname -r from the root file system = %q", release)
	}
	t.Logf("kernel from source, root file system without initramfs: boot to agent ready: %v", d)

	// As a store image boots (under Firecracker too): the initramfs's agent
	// stacks the root file system, read-only, and a scratch disk with
	// overlayfs, which the kernel must have built in.
	d, _ = bootToAgent(t, img, false, bootOverlay)
	t.Logf("kernel from source, overlay root (read-only base + scratch disk): boot to agent ready: %v", d)

	cloud, err := image.Build(ctx, image.Options{AgentPath: agentPath, CacheDir: cache})
	if err != nil {
		t.Logf("no Debian cloud kernel to compare with: %v", err)
		return
	}
	for range 3 {
		d, _ := bootToAgent(t, cloud, false, bootInitramfs)
		cloudBoots = append(cloudBoots, d)
	}
	t.Logf("Debian cloud kernel: boot to agent ready under QEMU TCG: %v (median of %v)", median(cloudBoots), cloudBoots)
}

// checkSourceKernelImage checks that img's kernel is an uncompressed
// x86-64 ELF.
func checkSourceKernelImage(t *testing.T, img *image.Image) {
	t.Helper()
	f, err := elf.Open(img.Kernel)
	if err != nil {
		t.Fatalf("image kernel %s: %v", img.Kernel, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Errorf("image kernel is %v %v, want an x86-64 executable", f.Machine, f.Type)
	}
	fi, err := os.Stat(img.Kernel)
	if err == nil {
		t.Logf("kernel %s: %.1f MiB; initrd %s", img.Kernel, float64(fi.Size())/(1<<20), img.Initrd)
	}
}

// How bootToAgent boots an image.
type bootMode int

const (
	bootInitramfs bootMode = iota // the initramfs alone
	bootRootFS                    // a copy of img.RootFS as the root drive, without the initramfs
	// bootOverlay: the initramfs, img.RootFS read-only as /dev/vda and a
	// fresh scratch disk as /dev/vdb, stacked by the agent (petty.root=,
	// petty.scratch=); the guest must show overlayfs in /proc/filesystems
	// and as its root.
	bootOverlay
)

// bootToAgent boots img under QEMU TCG as mode says, waits for its agent,
// runs `uname -r` and destroys the machine. It returns the time from Start
// to the agent answering and the guest's release.
func bootToAgent(t *testing.T, img *image.Image, logConsole bool, mode bootMode) (time.Duration, string) {
	t.Helper()
	var console bytes.Buffer
	cfg := vm.Config{
		VMM:       vm.QEMU,
		Accel:     "tcg",
		VCPUs:     1,
		MemoryMiB: 256,
		Kernel:    img.Kernel,
		Initrd:    img.Initrd,
		RunDir:    filepath.Join(testutil.ShortTempDir(t), "run"),
		Console:   &console,
	}
	switch mode {
	case bootOverlay:
		scratch, err := image.NewScratchDisk(t.Context(), filepath.Join(t.TempDir(), "scratch"), 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		cfg.RootDrive = vm.Drive{Path: img.RootFS, ReadOnly: true}
		cfg.Drives = []vm.Drive{{ID: image.ScratchDriveID, Path: scratch}}
		cfg.BootArgs = vm.DefaultBootArgs + " petty.root=/dev/vda petty.scratch=/dev/vdb"
	case bootRootFS:
		data, err := os.ReadFile(img.RootFS)
		if err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(t.TempDir(), "rootfs.ext4")
		if err := os.WriteFile(root, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Initrd, cfg.RootDrive = "", vm.Drive{Path: root}
	}
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.Destroy(ctx); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		if logConsole {
			t.Logf("console:\n%s", console.String())
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	began := time.Now()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("Start: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	c, err := m.Agent(ctx)
	if err != nil {
		t.Fatalf("Agent: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	defer c.Close()
	var stdout, stderr bytes.Buffer
	if err := c.Exec(ctx, &agent.Cmd{Args: []string{"uname", "-r"}, Stdout: &stdout, Stderr: &stderr}); err != nil {
		t.Fatalf("guest uname -r: %v\nstderr: %s\nconsole:\n%s", err, stderr.String(), m.ConsoleTail())
	}
	took := time.Since(began)
	if mode == bootOverlay {
		for file, want := range map[string]string{"/proc/filesystems": "\toverlay\n", "/proc/mounts": "overlay / overlay "} {
			b, err := c.ReadFile(ctx, file)
			if err != nil || !strings.Contains(string(b), want) {
				t.Errorf("guest %s lacks %q (%v):\n%s\nconsole:\n%s", file, want, err, b, m.ConsoleTail())
			}
		}
	}
	return took, strings.TrimSpace(stdout.String())
}

// buildAgent builds the static petty-agent into a temporary directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "petty-agent")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", out, "./cmd/petty-agent")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build petty-agent: %v\n%s", err, b)
	}
	return out
}

// stepRecorder records Build's progress steps with their start times.
type stepRecorder struct {
	mu    sync.Mutex
	steps []string
	at    []time.Time
}

func (r *stepRecorder) step(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, s)
	r.at = append(r.at, time.Now())
}

func (r *stepRecorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.steps)
}

// timed returns "STEP: DURATION" for each step but the last.
func (r *stepRecorder) timed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for i := 0; i+1 < len(r.steps); i++ {
		out = append(out, r.steps[i]+": "+r.at[i+1].Sub(r.at[i]).Round(time.Millisecond).String())
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}
