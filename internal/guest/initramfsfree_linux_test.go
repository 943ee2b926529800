package guest

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFreeInitramfsUnreachable: the initramfs is freed through the
// descriptor kept at the switch of root, when no path leads to it any more
// (here: its directory was renamed away), and only once.
func TestFreeInitramfsUnreachable(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "initramfs")
	if err := os.MkdirAll(filepath.Join(dir, "lib/modules"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "lib/modules/m.ko"), make([]byte, 42), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(root.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	keepInitramfs(root, st.Dev)
	moved := filepath.Join(base, "elsewhere")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if !freeInitramfs(slog.Default()) {
		t.Fatal("freeInitramfs found nothing kept")
	}
	if ents, err := os.ReadDir(moved); err != nil || len(ents) != 0 {
		t.Errorf("left %v (%v)", ents, err)
	}
	if freeInitramfs(slog.Default()) {
		t.Error("a second freeInitramfs ran again")
	}
}

// TestFirstAnswered: the signal that defers the initramfs's deletion fires
// once the first call has ended, not before.
func TestFirstAnswered(t *testing.T) {
	srv, sock := startServer(t)
	select {
	case <-srv.firstAnswered():
		t.Fatal("answered before any call")
	default:
	}
	c := dial(t, sock)
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.firstAnswered():
	case <-testContext(t).Done():
		t.Fatal("not answered after a Ping")
	}
	if _, err := c.Ping(testContext(t)); err != nil { // closing twice would panic
		t.Fatal(err)
	}
}
