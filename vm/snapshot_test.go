package vm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeSnapshotDir writes a snapshot directory with the given manifest and
// files (name → size).
func writeSnapshotDir(t *testing.T, man *Manifest, files map[string]int) string {
	t.Helper()
	dir := t.TempDir()
	for name, size := range files {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data, err := jsonIndent(man)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadManifest(t *testing.T) {
	good := func() *Manifest {
		return &Manifest{
			Format: SnapshotFormat, Backend: QEMU, QEMU: &QEMUSnapshot{Accel: "tcg", SerialAgent: true},
			Config: SnapshotConfig{VCPUs: 1, MemoryMiB: 128, Kernel: "/k", Drives: []SnapshotDrive{{ID: "data", Path: "drive-data.img"}}},
			Files:  []SnapshotFile{{"state", 10}, {"mem", 20}, {"agent.token", 33}, {"drive-data.img", 5}},
		}
	}
	files := map[string]int{"state": 10, "mem": 20, "agent.token": 33, "drive-data.img": 5}
	tests := []struct {
		name   string
		edit   func(*Manifest)
		files  map[string]int
		reason error // nil: valid
	}{
		{"valid", nil, files, nil},
		{"newer format", func(m *Manifest) { m.Format = SnapshotFormat + 1 }, files, ErrSnapshotFormat},
		{"format 0", func(m *Manifest) { m.Format = 0 }, files, ErrSnapshotFormat},
		{"unknown backend", func(m *Manifest) { m.Backend = "bochs" }, files, ErrSnapshotBackend},
		{"qemu without its section", func(m *Manifest) { m.QEMU = nil }, files, ErrSnapshotFormat},
		{"path in a file name", func(m *Manifest) { m.Files[0].Name = "../state" }, files, ErrSnapshotFormat},
		{"missing file", nil, map[string]int{"state": 10, "agent.token": 33, "drive-data.img": 5}, ErrSnapshotIncomplete},
		{"short file", nil, map[string]int{"state": 9, "mem": 20, "agent.token": 33, "drive-data.img": 5}, ErrSnapshotIncomplete},
		{"memory not listed", func(m *Manifest) { m.Files = m.Files[:1] }, files, ErrSnapshotIncomplete},
		{"drive not listed", func(m *Manifest) { m.Files = m.Files[:3] }, files, ErrSnapshotIncomplete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			if tt.edit != nil {
				tt.edit(m)
			}
			dir := writeSnapshotDir(t, m, tt.files)
			got, err := ReadManifest(dir)
			if tt.reason == nil {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(m, got); diff != "" {
					t.Errorf("manifest (-written +read):\n%s", diff)
				}
				return
			}
			var se *SnapshotError
			if !errors.As(err, &se) || !errors.Is(err, ErrSnapshot) || !errors.Is(err, tt.reason) || se.Dir != dir {
				t.Fatalf("ReadManifest: %v, want a *SnapshotError for %v in %s", err, tt.reason, dir)
			}
		})
	}
}

// TestRestoreConfig: a clone's Config comes from the manifest and the
// options; the options are not modified.
func TestRestoreConfig(t *testing.T) {
	man := &Manifest{Backend: Firecracker, Config: SnapshotConfig{
		VCPUs: 2, MemoryMiB: 256, Kernel: "/k", BootArgs: "console=ttyS0", HasRoot: true,
		Drives: []SnapshotDrive{{ID: "rootfs", Path: "drive-rootfs.img"}, {ID: "base", Path: "/img/base.ext4", ReadOnly: true}},
		MAC:    "06:00:00:00:00:01", Tap: "tap0", Vsock: true, VsockCID: 3,
	}}
	opts := RestoreOptions{Tap: "tap1", RunDir: "/run/x", VsockPath: "/run/v.sock"}
	before := opts
	got := restoreConfig("/snap", man, &opts)
	want := Config{
		VMM: Firecracker, VCPUs: 2, MemoryMiB: 256, Kernel: "/k", BootArgs: "console=ttyS0",
		RootDrive: Drive{ID: "rootfs", Path: "/snap/drive-rootfs.img"},
		Drives:    []Drive{{ID: "base", Path: "/img/base.ext4", ReadOnly: true}},
		Network:   &Network{Tap: "tap1", MAC: "06:00:00:00:00:01"},
		Vsock:     &Vsock{CID: 3, Path: "/run/v.sock"},
		RunDir:    "/run/x",
	}
	if diff := cmp.Diff(want.withoutFuncs(), got.withoutFuncs()); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if opts != before {
		t.Errorf("restoreConfig modified the options")
	}
	man.Backend, man.QEMU = QEMU, &QEMUSnapshot{Accel: "tcg"}
	if got := restoreConfig("/snap", man, &RestoreOptions{}); got.Vsock.CID != 0 || got.Accel != "tcg" || got.Network.Tap != "tap0" {
		t.Errorf("QEMU clone: vsock %+v, accel %q, tap %q; want a fresh CID, the snapshot's accelerator and tap", got.Vsock, got.Accel, got.Network.Tap)
	}
}
