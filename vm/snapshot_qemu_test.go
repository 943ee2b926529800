package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/agent"
)

// restoreQEMU restores a clone of the snapshot in dir, registers its
// destruction and the leftover checks, and returns it with a client of its
// agent.
func restoreQEMU(t *testing.T, dir string, opts RestoreOptions) (*Machine, *agent.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	began := time.Now()
	m, err := Restore(ctx, dir, opts)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	ready := time.Since(began)
	t.Cleanup(func() { destroyAndCheck(t, m) })
	c := waitAgent(t, m)
	t.Logf("QEMU/TCG restore to agent ready (refreshed): %v", ready.Round(time.Millisecond))
	return m, c
}

// snapshotQEMU snapshots m into a new directory and returns it.
func snapshotQEMU(t *testing.T, m *Machine) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "snap")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	began := time.Now()
	if err := m.Snapshot(ctx, dir); err != nil {
		t.Fatalf("Snapshot: %v\nconsole:\n%s", err, m.ConsoleTail())
	}
	t.Logf("snapshot took %v", time.Since(began).Round(time.Millisecond))
	return dir
}

// TestQEMUSnapshotClones: snapshot → two clones. Files and a background
// process of the origin are in both; each clone's writes are its own;
// their RNGs differ; their clocks are the host's although the snapshot sat
// for 3 s; the origin runs on.
func TestQEMUSnapshotClones(t *testing.T) {
	cfg := qemuConfig(t)
	// A writable disk, unlinked once the VM runs (as a sandbox's scratch
	// disk is): the snapshot copies it all the same.
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Drives = []Drive{{ID: "data", Path: disk}}
	origin, oc := startQEMU(t, cfg)
	if err := os.Remove(disk); err != nil {
		t.Fatal(err)
	}
	run(t, oc, "sh", "-c", "echo origin > /tmp/mark; sleep 100000 > /dev/null 2>&1 & echo $! > /tmp/bg.pid")
	writeDisk(t, oc, "origin-disk")
	bgPID := strings.TrimSpace(run(t, oc, "cat", "/tmp/bg.pid"))
	dir := snapshotQEMU(t, origin)
	if got := run(t, oc, "cat", "/tmp/mark"); got != "origin\n" {
		t.Fatalf("origin after the snapshot: /tmp/mark = %q", got)
	}
	man, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("manifest: %+v", man.Files)

	time.Sleep(3 * time.Second) // the snapshot sits: clones must not keep its clock
	opts := RestoreOptions{RunDir: cfg.RunDir}
	o1, o2 := opts, opts
	o1.Hostname, o2.Hostname = "clone-one", "clone-two"
	// Each clone's clock is checked at once: a TCG guest's clock source is
	// refined-jiffies, which drifts when the host is overloaded.
	m1, c1 := restoreQEMU(t, dir, o1)
	checkClock(t, c1, 1)
	m2, c2 := restoreQEMU(t, dir, o2)
	checkClock(t, c2, 2)
	if m1.ID() == m2.ID() {
		t.Fatal("clones share an ID")
	}
	for i, c := range []*agent.Client{c1, c2} {
		if got := run(t, c, "cat", "/tmp/mark"); got != "origin\n" {
			t.Errorf("clone %d: /tmp/mark = %q, want the origin's", i+1, got)
		}
		if _, err := c.Output(t.Context(), "sh", "-c", "kill -0 "+bgPID); err != nil {
			t.Errorf("clone %d: the background process %s is gone: %v", i+1, bgPID, err)
		}
		host := strings.TrimSpace(run(t, c, "cat", "/proc/sys/kernel/hostname"))
		if want := []string{"clone-one", "clone-two"}[i]; host != want {
			t.Errorf("clone %d: hostname %q, want %q", i+1, host, want)
		}
	}
	for i, c := range []*agent.Client{c1, c2} {
		if got := readDisk(t, c); got != "origin-disk" {
			t.Errorf("clone %d: disk holds %q, want the origin's", i+1, got)
		}
	}
	run(t, c1, "sh", "-c", "echo one > /tmp/mark")
	run(t, c2, "sh", "-c", "echo two > /tmp/mark")
	writeDisk(t, c1, "clone-one")
	writeDisk(t, oc, "origin-new")
	if got := readDisk(t, c2); got != "origin-disk" {
		t.Errorf("clone 2: disk holds %q after the others wrote theirs", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, "drive-data.img"))
	if err != nil || !strings.HasPrefix(string(data), "origin-disk") {
		t.Errorf("the snapshot's disk changed: %.20q, %v", data, err)
	}
	for _, tc := range []struct {
		name string
		c    *agent.Client
		want string
	}{{"origin", oc, "origin\n"}, {"clone 1", c1, "one\n"}, {"clone 2", c2, "two\n"}} {
		if got := run(t, tc.c, "cat", "/tmp/mark"); got != tc.want {
			t.Errorf("%s: /tmp/mark = %q, want %q", tc.name, got, tc.want)
		}
	}
	r1 := run(t, c1, "sh", "-c", "head -c 32 /dev/urandom | od -An -tx1")
	r2 := run(t, c2, "sh", "-c", "head -c 32 /dev/urandom | od -An -tx1")
	if r1 == r2 {
		t.Errorf("both clones read %s from /dev/urandom", r1)
	}
	// The snapshot is untouched by the clones.
	if _, err := ReadManifest(dir); err != nil {
		t.Errorf("snapshot after the clones: %v", err)
	}
}

// TestQEMUSnapshotErrors: wrong backend, newer format, missing and short
// files are *SnapshotError with their reason.
func TestQEMUSnapshotErrors(t *testing.T) {
	cfg := qemuConfig(t)
	origin, _ := startQEMU(t, cfg)
	dir := snapshotQEMU(t, origin)
	copyDir := func(t *testing.T) string {
		t.Helper()
		d := filepath.Join(t.TempDir(), "copy")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if err := os.Link(filepath.Join(dir, e.Name()), filepath.Join(d, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	editManifest := func(t *testing.T, d string, edit func(*Manifest)) {
		t.Helper()
		man, err := ReadManifest(d)
		if err != nil {
			t.Fatal(err)
		}
		edit(man)
		w := &snapshotWriter{dir: d, man: man}
		_ = os.Remove(filepath.Join(d, ManifestName))
		data, _ := jsonIndent(man)
		if err := os.WriteFile(filepath.Join(d, ManifestName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		_ = w
	}
	tests := []struct {
		name   string
		prep   func(t *testing.T) string
		opts   RestoreOptions
		reason error
	}{
		{"wrong backend", func(t *testing.T) string { return dir }, RestoreOptions{VMM: Firecracker}, ErrSnapshotBackend},
		{"newer format", func(t *testing.T) string {
			d := copyDir(t)
			editManifest(t, d, func(m *Manifest) { m.Format = SnapshotFormat + 1 })
			return d
		}, RestoreOptions{}, ErrSnapshotFormat},
		{"missing memory", func(t *testing.T) string {
			d := copyDir(t)
			os.Remove(filepath.Join(d, snapMemFile))
			return d
		}, RestoreOptions{}, ErrSnapshotIncomplete},
		{"short state", func(t *testing.T) string {
			d := copyDir(t)
			p := filepath.Join(d, snapStateFile)
			os.Remove(p)
			if err := os.WriteFile(p, []byte("short"), 0o600); err != nil {
				t.Fatal(err)
			}
			return d
		}, RestoreOptions{}, ErrSnapshotIncomplete},
		{"no manifest", func(t *testing.T) string { return t.TempDir() }, RestoreOptions{}, ErrSnapshotIncomplete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.prep(t)
			opts := tc.opts
			opts.RunDir = cfg.RunDir
			m, err := Restore(t.Context(), d, opts)
			if err == nil {
				m.Destroy(context.Background())
				t.Fatal("Restore succeeded")
			}
			var se *SnapshotError
			if !errors.Is(err, ErrSnapshot) || !errors.Is(err, tc.reason) || !errors.As(err, &se) {
				t.Fatalf("Restore: %v; want a *SnapshotError for %v", err, tc.reason)
			}
		})
	}
	ents, _ := os.ReadDir(cfg.RunDir)
	if len(ents) != 1 { // the origin's
		t.Errorf("run root holds %d entries after failed restores, want the origin's only", len(ents))
	}
}

// writeDisk writes s at the start of the guest's /dev/vda, synchronously.
func writeDisk(t *testing.T, c *agent.Client, s string) {
	t.Helper()
	run(t, c, "sh", "-c", "printf "+s+" | busybox dd of=/dev/vda conv=notrunc,fsync 2>/dev/null")
}

// readDisk reads the start of the guest's /dev/vda up to the first NUL.
func readDisk(t *testing.T, c *agent.Client) string {
	t.Helper()
	out := run(t, c, "sh", "-c", "busybox dd if=/dev/vda bs=16 count=1 iflag=direct 2>/dev/null")
	return strings.TrimRight(out, "\x00")
}

// TestQEMUSnapshotMidExec: a snapshot taken while a command runs in the
// guest: the command completes in the origin with its output, and a clone
// serves new commands.
func TestQEMUSnapshotMidExec(t *testing.T) {
	cfg := qemuConfig(t)
	origin, oc := startQEMU(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	type result struct {
		out string
		err error
	}
	run(t, oc, "sh", "-c", "mkfifo /tmp/go")
	done := make(chan result, 1)
	go func() {
		var out strings.Builder
		err := oc.Exec(ctx, &agent.Cmd{Args: []string{"sh", "-c", "echo started > /tmp/started; read line < /tmp/go; echo finished $line"}, Stdout: &out})
		done <- result{out.String(), err}
	}()
	for { // the command runs once it wrote /tmp/started
		if _, err := oc.Stat(ctx, "/tmp/started"); err == nil {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the command ended early: %q, %v", r.out, r.err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	dir := snapshotQEMU(t, origin)
	run(t, oc, "sh", "-c", "echo go > /tmp/go")
	r := <-done
	if r.err != nil || r.out != "finished go\n" {
		t.Errorf("the command that ran across the snapshot: %q, %v", r.out, r.err)
	}
	_, cc := restoreQEMU(t, dir, RestoreOptions{RunDir: cfg.RunDir})
	if got := run(t, cc, "cat", "/tmp/started"); got != "started\n" {
		t.Errorf("clone: /tmp/started = %q", got)
	}
	if got := run(t, cc, "sh", "-c", "echo clone"); got != "clone\n" {
		t.Errorf("clone: %q", got)
	}
}

// checkClock checks that the guest's wall clock is within a second of the
// host's: a new file's mtime is the guest's clock.
func checkClock(t *testing.T, c *agent.Client, clone int) {
	t.Helper()
	before := time.Now()
	run(t, c, "sh", "-c", "echo > /tmp/now")
	fi, err := c.Stat(t.Context(), "/tmp/now")
	if err != nil {
		t.Fatal(err)
	}
	if fi.ModTime.Before(before.Add(-time.Second)) || fi.ModTime.After(time.Now().Add(time.Second)) {
		t.Errorf("clone %d: guest clock says %v, host %v", clone, fi.ModTime, before)
	}
}
