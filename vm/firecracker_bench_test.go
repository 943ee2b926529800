package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/internal/testutil"
)

// BenchmarkStartFirecracker compares the two ways of configuring Firecracker
// (API calls vs --config-file) on the fake firecracker: each iteration is
// Start (until the VMM acknowledged the boot) and Kill.
//
//	go test -run '^$' -bench StartFirecracker -benchtime 100x ./vm
func BenchmarkStartFirecracker(b *testing.B) {
	dir := testutil.ShortTempDir(b)
	kernel, rootfs := filepath.Join(dir, "vmlinux"), filepath.Join(dir, "rootfs")
	for _, p := range []string{kernel, rootfs} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cfg := Config{
		Kernel: kernel, RootDrive: Drive{Path: rootfs}, Vsock: &Vsock{},
		FirecrackerBin: testutil.FakeFirecracker(b), RunDir: filepath.Join(dir, "run"),
	}
	for _, mode := range []struct {
		name       string
		configFile bool
	}{{"api", false}, {"config-file", true}} {
		b.Run(mode.name, func(b *testing.B) {
			defer func(old bool) { useConfigFile = old }(useConfigFile)
			useConfigFile = mode.configFile
			m, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer m.Destroy(context.Background())
			for b.Loop() {
				if err := m.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				m.Kill()
				b.StartTimer()
			}
		})
	}
}

func TestStartWithConfigFile(t *testing.T) {
	defer func(old bool) { useConfigFile = old }(useConfigFile)
	useConfigFile = true
	dir := testutil.ShortTempDir(t)
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Kernel: kernel, FirecrackerBin: testutil.FakeFirecracker(t), RunDir: filepath.Join(dir, "run"), Vsock: &Vsock{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestStartWithAPICallsReportsAPIError(t *testing.T) {
	defer func(old bool) { useConfigFile = old }(useConfigFile)
	useConfigFile = false
	t.Setenv("FAKEFC_FAIL", "/drives")
	dir := testutil.ShortTempDir(t)
	kernel := filepath.Join(dir, "vmlinux")
	if err := os.WriteFile(kernel, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Kernel: kernel, RootDrive: Drive{Path: kernel}, FirecrackerBin: testutil.FakeFirecracker(t), RunDir: filepath.Join(dir, "run")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	err = m.Start(t.Context())
	var ae *firecracker.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Op != "PUT /drives/rootfs" {
		t.Fatalf("Start = %v, want an *APIError for PUT /drives/rootfs", err)
	}
	if m.State() != Stopped {
		t.Errorf("state %v", m.State())
	}
}
