package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readAll(t *testing.T, img *Image) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{img.Kernel, img.Initrd, img.RootFS} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestBuildCache(t *testing.T) {
	h := newFakeHost(t)
	cache := t.TempDir()
	var steps []string
	opts := h.options(cache)
	opts.Progress = func(s string) { steps = append(steps, s) }
	before := opts

	first, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached {
		t.Error("first build reported a cache hit")
	}
	if diff := cmp.Diff([]string{"resolve inputs", "extract kernel", "initramfs", "store"}, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if opts.KernelPath != before.KernelPath || opts.CacheDir != before.CacheDir || opts.RootFSSizeMiB != 0 {
		t.Error("Build changed the caller's options")
	}
	if filepath.Dir(first.Kernel) != filepath.Join(cache, first.Key) || first.RootFS != "" {
		t.Errorf("unexpected layout %+v", first)
	}

	steps = nil
	second, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || second.Key != first.Key {
		t.Errorf("second build: cached %v key %s, want a hit on %s", second.Cached, second.Key, first.Key)
	}
	if diff := cmp.Diff([]string{"resolve inputs", "cached"}, steps); diff != "" {
		t.Errorf("steps on a hit (-want +got):\n%s", diff)
	}

	// A changed input (the agent) is a new key and a new build.
	writeFile(t, h.agent, fakeELF([]byte("agent v2")))
	third, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if third.Cached || third.Key == first.Key {
		t.Errorf("changed agent: cached %v key %s (old %s)", third.Cached, third.Key, first.Key)
	}

	// A changed module too.
	writeFile(t, filepath.Join(h.modules, "kernel/drivers/block/virtio_blk.ko"), fakeELF([]byte("virtio_blk v2")))
	fourth, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if fourth.Cached || fourth.Key == third.Key {
		t.Errorf("changed module: cached %v key %s (old %s)", fourth.Cached, fourth.Key, third.Key)
	}

	// No temporary build directories are left behind.
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("leftover %s", e.Name())
		}
	}
	if len(entries) != 3 {
		t.Errorf("%d cache entries, want 3", len(entries))
	}
}

func TestBuildIncompleteEntryIsRebuilt(t *testing.T) {
	h := newFakeHost(t)
	opts := h.options(t.TempDir())
	img, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(img.Initrd); err != nil {
		t.Fatal(err)
	}
	again, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Cached {
		t.Error("an entry missing initrd.img was reported as a hit")
	}
	if _, err := os.Stat(again.Initrd); err != nil {
		t.Error(err)
	}
}

func TestBuildDeterministic(t *testing.T) {
	for _, rootfs := range []bool{false, true} {
		t.Run(map[bool]string{false: "initramfs", true: "rootfs"}[rootfs], func(t *testing.T) {
			h := newFakeHost(t)
			opts := h.options(t.TempDir())
			if rootfs {
				if _, err := findSbinTool(mkfsName); err != nil {
					t.Skipf("the root file system's determinism is not checked: %v", err)
				}
				opts.RootFS = true
				opts.RootFSSizeMiB = 16
			}
			a, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			opts.CacheDir = t.TempDir()
			b, err := Build(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if a.Key != b.Key || b.Cached {
				t.Fatalf("keys %s and %s (cached %v)", a.Key, b.Key, b.Cached)
			}
			fa, fb := readAll(t, a), readAll(t, b)
			if _, ok := fa[rootfsName]; ok != rootfs {
				t.Errorf("%s built: %v, want %v", rootfsName, ok, rootfs)
			}
			for name := range fa {
				if !bytes.Equal(fa[name], fb[name]) {
					t.Errorf("%s differs between two builds of the same inputs", name)
				}
			}
			t.Logf("files: %v", sortedKeys(fa))
		})
	}
}

func TestInitramfsContents(t *testing.T) {
	h := newFakeHost(t)
	img, err := Build(context.Background(), h.options(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(img.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	entries := parseNewc(t, raw)
	byName := map[string]newcEntry{}
	for _, e := range entries {
		byName[e.Name] = e
		if e.UID != 0 || e.GID != 0 || e.Mtime != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d, want zeros", e.Name, e.UID, e.GID, e.Mtime)
		}
	}
	for _, name := range []string{"init", "bin/busybox", "bin/sh", "bin/switch_root", "sbin/petty-agent", "dev/console", "etc/petty/modules.load"} {
		if _, ok := byName[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
	if got := byName["init"].Data; got != initScript {
		t.Error("init is not init.sh (the fake agent cannot be init)")
	}
	if _, ok := byName["init.sh"]; ok {
		t.Error("init.sh next to a shell /init")
	}
	var load []string
	for _, line := range strings.Split(strings.TrimSuffix(byName["etc/petty/modules.load"].Data, "\n"), "\n") {
		when, p, ok := strings.Cut(line, " ")
		if !ok || when == "" {
			t.Errorf("modules.load line %q is not \"CONDITIONS PATH\"", line)
			continue
		}
		load = append(load, p)
	}
	if len(load) == 0 || load[0] != "/lib/modules/"+fakeRelease+"/kernel/drivers/virtio/virtio_ring.ko" {
		t.Errorf("modules.load starts %v", load)
	}
	for _, p := range load {
		e, ok := byName[strings.TrimPrefix(p, "/")]
		if !ok {
			t.Errorf("modules.load names %s, which is not in the archive", p)
			continue
		}
		if !strings.HasPrefix(e.Data, "\x7fELF") {
			t.Errorf("%s is not a plain ELF module", p)
		}
	}
	if !strings.Contains(byName["etc/petty/modules.load"].Data, "/vsock.ko\n") {
		t.Error("compressed vsock.ko.xz not stored as a plain vsock.ko")
	}
}

func TestBuildErrors(t *testing.T) {
	h := newFakeHost(t)
	empty := t.TempDir()
	dynamic := "/bin/sh" // any dynamically linked executable
	if err := checkStatic(dynamic); err == nil {
		dynamic = ""
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		setup   func(t *testing.T)
		pkg     string
		wantErr error
	}{
		{name: "no agent", mod: func(o *Options) { o.AgentPath = "" }, wantErr: ErrNoAgent},
		{name: "missing kernel file", mod: func(o *Options) { o.KernelPath = filepath.Join(empty, "vmlinuz-x") }, pkg: kernelPackage},
		{name: "no kernel in /boot", mod: func(o *Options) { o.KernelPath = "" }, setup: func(t *testing.T) { setVar(t, &bootDir, empty) }, pkg: kernelPackage},
		{name: "missing modules", mod: func(o *Options) { o.ModulesDir = filepath.Join(empty, "nope") }, pkg: "linux-image-" + fakeRelease},
		{name: "missing busybox", mod: func(o *Options) { o.BusyboxPath = filepath.Join(empty, "busybox") }, pkg: busyboxPackage},
		{name: "default busybox missing", mod: func(o *Options) { o.BusyboxPath = "" }, setup: func(t *testing.T) { setVar(t, &defaultBusybox, filepath.Join(empty, "bb")) }, pkg: busyboxPackage},
		{name: "dynamic busybox", mod: func(o *Options) { o.BusyboxPath = dynamic }, pkg: busyboxPackage},
		{name: "missing mkfs.ext4", mod: func(o *Options) { o.RootFS = true }, setup: func(t *testing.T) {
			t.Setenv("PATH", empty)
			setVar(t, &sbinDirs, []string{empty})
		}, pkg: mkfsPackage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "dynamic busybox" && dynamic == "" {
				t.Skip("no dynamically linked /bin/sh to test with")
			}
			if tt.setup != nil {
				tt.setup(t)
			}
			opts := h.options(t.TempDir())
			tt.mod(&opts)
			_, err := Build(context.Background(), opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			var missing *MissingError
			if !errors.As(err, &missing) {
				t.Fatalf("err = %v (%T), want a *MissingError", err, err)
			}
			if missing.Package != tt.pkg {
				t.Errorf("Package = %q, want %q", missing.Package, tt.pkg)
			}
			if want := "apt-get install " + tt.pkg; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		})
	}
}

func TestBuildRejectsDynamicAgent(t *testing.T) {
	if err := checkStatic("/bin/sh"); err == nil {
		t.Skip("no dynamically linked /bin/sh to test with")
	}
	h := newFakeHost(t)
	opts := h.options(t.TempDir())
	opts.AgentPath = "/bin/sh"
	_, err := Build(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "static") {
		t.Errorf("err = %v, want a static-agent error", err)
	}
}

func TestBuildCanceled(t *testing.T) {
	h := newFakeHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Build(ctx, h.options(t.TempDir())); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func setVar[T any](t *testing.T, p *T, v T) {
	t.Helper()
	old := *p
	*p = v
	t.Cleanup(func() { *p = old })
}
