package fsutil

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCloneNewKeepsDataAndHoles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	a, b := bytes.Repeat([]byte("a"), 8192), bytes.Repeat([]byte("b"), 100)
	if _, err := f.WriteAt(a, 4096); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, size-100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dst := filepath.Join(dir, "dst")
	if err := CloneNew(dst, src, 0o600); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("copy differs from the source")
	}
	var st os.FileInfo
	if st, err = os.Stat(dst); err != nil {
		t.Fatal(err)
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 8<<20 {
		t.Errorf("copy allocates %d bytes of a 64 MiB file with 8 KiB of data: holes were filled", used)
	}
	if err := CloneNew(dst, src, 0o600); !os.IsExist(err) {
		t.Fatalf("CloneNew onto an existing file: %v, want it to exist", err)
	}
}
