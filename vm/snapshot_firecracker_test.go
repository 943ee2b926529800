package vm_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/guest"
	"github.com/pettyvm/petty/vm"
)

// TestFirecrackerSnapshotClones: under the fake firecracker, a snapshot
// (pause, create, resume) and two clones (load with the clone's vsock
// socket, resume) whose agents answer and were refreshed; each clone's
// writable drive is its own copy; the origin runs on; nothing is left.
func TestFirecrackerSnapshotClones(t *testing.T) {
	withAgentGuest(t)
	t.Setenv(guest.RefreshDryRunEnv, "1")
	cfg := fakeConfig(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	origin, err := vm.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	opid := origin.PID()
	defer checkClean(t, origin, opid)
	defer origin.Destroy(context.Background())

	dir := filepath.Join(t.TempDir(), "snap")
	if err := origin.Snapshot(ctx, dir); err != nil {
		t.Fatalf("Snapshot: %v\nconsole:\n%s", err, origin.ConsoleTail())
	}
	if st := origin.State(); st != vm.Running {
		t.Errorf("origin after the snapshot: %v, want running", st)
	}
	man, err := vm.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if man.Backend != vm.Firecracker || man.Format != vm.SnapshotFormat {
		t.Errorf("manifest %+v", man)
	}
	snapDrive := filepath.Join(dir, "drive-rootfs.img")
	if got, _ := os.ReadFile(snapDrive); string(got) != "image" {
		t.Fatalf("snapshot's drive copy holds %q", got)
	}

	var clones []*vm.Machine
	for _, host := range []string{"one", "two"} {
		m, err := vm.Restore(ctx, dir, vm.RestoreOptions{RunDir: cfg.RunDir, FirecrackerBin: cfg.FirecrackerBin, Hostname: host})
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		pid := m.PID()
		defer checkMachineClean(t, m, pid)
		defer m.Destroy(context.Background())
		clones = append(clones, m)
		c, err := m.Agent(ctx)
		if err != nil {
			t.Fatalf("clone's Agent: %v\nconsole:\n%s", err, m.ConsoleTail())
		}
		if _, err := c.Ping(ctx); err != nil {
			t.Errorf("clone's Ping: %v", err)
		}
		c.Close()
		tail := m.ConsoleTail()
		if !bytes.Contains(tail, []byte("resumed from a snapshot")) || !bytes.Contains(tail, []byte("refresh (dry run")) {
			t.Errorf("clone's console lacks the resume and the refresh:\n%s", tail)
		}
		drive := m.Config().RootDrive.Path
		if filepath.Dir(drive) != m.RunDir() {
			t.Errorf("clone's root drive %s is not its own copy in %s", drive, m.RunDir())
		}
		if err := os.WriteFile(drive, []byte(host), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(snapDrive); string(got) != "image" {
		t.Errorf("a clone wrote into the snapshot's drive: %q", got)
	}
	if got, _ := os.ReadFile(cfg.RootDrive.Path); string(got) != "image" {
		t.Errorf("a clone wrote into the origin's drive: %q", got)
	}
	if clones[0].ID() == clones[1].ID() {
		t.Error("clones share an ID")
	}
}

// TestFirecrackerRestoreErrors: another backend's snapshot and a snapshot
// whose state file is broken (the fake's load fails, and the process ends).
func TestFirecrackerRestoreErrors(t *testing.T) {
	withAgentGuest(t)
	t.Setenv(guest.RefreshDryRunEnv, "1")
	cfg := fakeConfig(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	origin, err := vm.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	opid := origin.PID()
	defer checkClean(t, origin, opid)
	defer origin.Destroy(context.Background())
	dir := filepath.Join(t.TempDir(), "snap")
	if err := origin.Snapshot(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.Restore(ctx, dir, vm.RestoreOptions{VMM: vm.QEMU, RunDir: cfg.RunDir}); !errors.Is(err, vm.ErrSnapshotBackend) || !errors.Is(err, vm.ErrSnapshot) {
		t.Errorf("Restore with QEMU: %v, want ErrSnapshotBackend", err)
	}
	// Same size, wrong content: the manifest's check passes, the load fails.
	state := filepath.Join(dir, "state")
	st, _ := os.Stat(state)
	os.Remove(state)
	if err := os.WriteFile(state, bytes.Repeat([]byte("x"), int(st.Size())), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = vm.Restore(ctx, dir, vm.RestoreOptions{RunDir: cfg.RunDir, FirecrackerBin: cfg.FirecrackerBin})
	if err == nil {
		t.Fatal("Restore of a broken state succeeded")
	}
	t.Logf("broken state: %v", err)
	ents, _ := os.ReadDir(cfg.RunDir)
	if len(ents) != 1 {
		t.Errorf("run root holds %d entries after a failed restore, want the origin's only", len(ents))
	}
}
