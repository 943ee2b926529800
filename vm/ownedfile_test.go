package vm_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pettyvm/petty/vm"
)

// TestVsockPathNotOurs checks that vm never unlinks a Vsock.Path it did
// not create: a file or socket already there makes Start fail, naming it,
// and survives Start and Destroy.
func TestVsockPathNotOurs(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, path string)
	}{
		{"regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"someone's socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			t.Cleanup(func() { l.Close() })
		}},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fakeConfig(t)
			path := filepath.Join(filepath.Dir(cfg.Kernel), "user.vsock")
			cfg.Vsock = &vm.Vsock{Path: path}
			tt.plant(t, path)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := vm.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = m.Start(t.Context())
			if !errors.Is(err, vm.ErrPathInUse) || !strings.Contains(err.Error(), path) {
				t.Errorf("Start = %v, want ErrPathInUse naming %s", err, path)
			}
			if err := m.Destroy(t.Context()); err != nil {
				t.Fatal(err)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) {
				t.Errorf("%s was removed or replaced (err=%v)", path, err)
			}
			checkClean(t, m, 0)
		})
	}
}

// TestVsockPathOurs checks that a user-supplied Vsock.Path that did not
// exist is the VMM's socket, removed when the VMM exits, so that the
// Machine can boot again.
func TestVsockPathOurs(t *testing.T) {
	cfg := fakeConfig(t)
	path := filepath.Join(filepath.Dir(cfg.Kernel), "user.vsock")
	cfg.Vsock = &vm.Vsock{Path: path}
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	for boot := range 2 {
		if err := m.Start(t.Context()); err != nil {
			t.Fatalf("boot %d: %v", boot, err)
		}
		if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("boot %d: no vsock socket at %s (err=%v)", boot, path, err)
		}
		if err := m.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("boot %d: %s left after the VMM exited (err=%v)", boot, path, err)
		}
	}
}

// TestRunDirCreatedAtStart checks the run directory's life: nothing before
// Start, <RunDir>/<ID> 0700 from Start, gone after Destroy; an unsafe
// root is refused at Start.
func TestRunDirCreatedAtStart(t *testing.T) {
	cfg := fakeConfig(t)
	m, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(cfg.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("New created %s (err=%v)", cfg.RunDir, err)
	}
	if m.RunDir() != filepath.Join(cfg.RunDir, m.ID()) {
		t.Errorf("RunDir() = %s", m.RunDir())
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{cfg.RunDir, m.RunDir()} {
		if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, err %v; want a 0700 directory", dir, fi, err)
		}
	}
	pid := m.PID()
	if err := m.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, m, pid)

	// Made unsafe between New and Start (another user's trick): refused.
	m2, err := vm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg.RunDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := m2.Start(t.Context()); err == nil || !strings.Contains(err.Error(), cfg.RunDir) {
		t.Errorf("Start with a 0777 run root = %v, want an error naming it", err)
	}
	if _, err := os.Lstat(m2.RunDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start made %s under an unsafe root", m2.RunDir())
	}
	if err := m2.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestMakeRunDir checks that MakeRunDir creates the run directory before
// Start (for files a caller keeps there), and that Start and Destroy then
// use and remove it.
func TestMakeRunDir(t *testing.T) {
	m, err := vm.New(fakeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := m.MakeRunDir(); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(m.RunDir(), "console.log")
	if err := os.WriteFile(log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(log); err != nil {
		t.Errorf("Start lost the caller's file: %v", err)
	}
	pid := m.PID()
	if err := m.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, m, pid)
	if err := m.MakeRunDir(); !errors.Is(err, vm.ErrDestroyed) {
		t.Errorf("MakeRunDir after Destroy = %v, want ErrDestroyed", err)
	}
}
