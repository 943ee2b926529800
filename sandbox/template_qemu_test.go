package sandbox_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/vm"
)

// templateCounter counts the template snapshots a Manager makes.
type templateCounter struct {
	mu   sync.Mutex
	made []string
}

func (c *templateCounter) on(image string, d time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		image += " failed: " + err.Error()
	}
	c.made = append(c.made, image)
}

func (c *templateCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.made)
}

// TestQEMUTemplate: with Snapshots, the first sandbox of an image makes
// its template snapshot once and every sandbox is a restore of it; another
// Manager on the same StateDir reuses it; a changed image file, or another
// size, makes another.
func TestQEMUTemplate(t *testing.T) {
	img := testutil.GuestImage(t)
	dir := testutil.ShortTempDir(t)
	initrd := filepath.Join(dir, "initrd.img")
	copyFile := func() {
		b, err := os.ReadFile(img.Initrd)
		if err != nil {
			t.Fatal(err)
		}
		tmp := initrd + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, initrd); err != nil { // a new inode: a changed image
			t.Fatal(err)
		}
	}
	copyFile()
	stateDir := filepath.Join(dir, "state")
	runRoot := filepath.Join(dir, "run")
	var made templateCounter
	newManager := func() *sandbox.Manager {
		m, err := sandbox.NewManager(sandbox.Config{
			Images: func(context.Context, string) (sandbox.Image, error) {
				return sandbox.Image{Kernel: img.Kernel, Initrd: initrd}, nil
			},
			VM:          vm.Config{VMM: vm.QEMU, Accel: "tcg", VCPUs: 1, MemoryMiB: 256, RunDir: runRoot},
			BootTimeout: 2 * time.Minute,
			WorkDir:     dir,
			Snapshots:   true,
			StateDir:    stateDir,
			OnTemplate:  made.on,
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	restored := func(steps []string) bool { return slices.Contains(steps, "restoring the template snapshot") }
	templates := func() []string {
		entries, _ := os.ReadDir(filepath.Join(stateDir, "templates"))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}

	m := newManager()
	began := time.Now()
	a, steps := createSteps(t, m, sandbox.Options{})
	t.Logf("first sandbox (template made, then restored): %v", time.Since(began))
	if !restored(steps) || made.count() != 1 {
		t.Fatalf("first Create: steps %q, templates made %q", steps, made.made)
	}
	began = time.Now()
	b, steps := createSteps(t, m, sandbox.Options{})
	t.Logf("second sandbox (restored): %v", time.Since(began))
	if !restored(steps) || made.count() != 1 {
		t.Errorf("second Create: steps %q, templates made %q (want the first reused)", steps, made.made)
	}
	for _, s := range []*sandbox.Sandbox{a, b} {
		res, err := s.Run(t.Context(), sandbox.RunOptions{Args: []string{"uname", "-n"}})
		if err != nil {
			t.Fatalf("hostname in a clone: %v", err)
		}
		if !strings.HasPrefix(string(res.Stdout), "petty-") {
			t.Errorf("hostname of a clone: %q", res.Stdout)
		}
	}
	// The clones are independent: a file written in a is not in b.
	if err := a.WriteFile(t.Context(), "/tmp/only-in-a", []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(t.Context(), "/tmp/only-in-a"); err == nil {
		t.Error("b sees a's file")
	}
	if fi, err := os.Stat(filepath.Join(stateDir, "templates")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("templates directory: %v, %v (want 0700)", fi, err)
	}
	closeClean(t, m, runRoot)

	// A new Manager on the same StateDir uses the template on disk.
	m = newManager()
	defer func() { closeClean(t, m, runRoot) }()
	if _, steps := createSteps(t, m, sandbox.Options{}); !restored(steps) || made.count() != 1 {
		t.Errorf("after a restart: steps %q, templates made %q", steps, made.made)
	}
	// Another size gets its own template.
	if _, steps := createSteps(t, m, sandbox.Options{MemoryMiB: 320}); !restored(steps) || made.count() != 2 {
		t.Errorf("320 MiB: steps %q, templates made %q", steps, made.made)
	}
	// A changed image file: a new template replaces the old one.
	before := templates()
	copyFile()
	if _, steps := createSteps(t, m, sandbox.Options{}); !restored(steps) || made.count() != 3 {
		t.Errorf("changed initrd: steps %q, templates made %q", steps, made.made)
	}
	after := templates()
	if len(after) != len(before) || slices.Equal(after, before) {
		t.Errorf("templates before the change %q, after %q: want the old one replaced", before, after)
	}
}
