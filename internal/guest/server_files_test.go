package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pettyvm/petty/agent"
)

func TestFiles(t *testing.T) {
	c := newTestClient(t)
	ctx := testContext(t)
	dir := t.TempDir()

	p := filepath.Join(dir, "a", "b", "file.txt")
	if err := c.WriteFile(ctx, p, []byte("hi"), 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("WriteFile without parents = %v, want fs.ErrNotExist", err)
	}
	if err := c.WriteFile(ctx, p, []byte("hello"), 0o640, agent.CreateParents()); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadFile(ctx, p)
	if err != nil || string(got) != "hello" {
		t.Fatalf("ReadFile = %q, %v", got, err)
	}
	fi, err := c.Stat(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Name != "file.txt" || fi.Size != 5 || fi.Mode != 0o640 || fi.IsDir || time.Since(fi.ModTime) > time.Minute {
		t.Errorf("Stat = %+v", fi)
	}
	// Truncates and re-applies the mode exactly.
	if err := c.WriteFile(ctx, p, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("after rewrite: %v %v", fi.Mode(), err)
	}

	os.WriteFile(filepath.Join(dir, "a", "x"), []byte("12345"), 0o644)
	ents, err := c.ListDir(ctx, filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	type ent struct {
		Name  string
		Size  int64
		IsDir bool
		Mode  fs.FileMode
	}
	var gotEnts []ent
	for _, e := range ents {
		m := e.Mode
		if e.IsDir {
			m = fs.ModeDir
		}
		gotEnts = append(gotEnts, ent{e.Name, map[bool]int64{true: 0, false: e.Size}[e.IsDir], e.IsDir, m})
	}
	want := []ent{{"b", 0, true, fs.ModeDir}, {"x", 5, false, 0o644}}
	if diff := cmp.Diff(want, gotEnts); diff != "" {
		t.Errorf("ListDir (-want +got):\n%s", diff)
	}
}

func TestFileErrors(t *testing.T) {
	c := newTestClient(t)
	ctx := testContext(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"read missing", func() error { _, err := c.ReadFile(ctx, missing); return err }, fs.ErrNotExist},
		{"stat missing", func() error { _, err := c.Stat(ctx, missing); return err }, fs.ErrNotExist},
		{"list missing", func() error { _, err := c.ListDir(ctx, missing); return err }, fs.ErrNotExist},
		{"write into missing dir", func() error { return c.WriteFile(ctx, filepath.Join(missing, "f"), nil, 0o644) }, fs.ErrNotExist},
		{"read empty path", func() error { _, err := c.ReadFile(ctx, ""); return err }, fs.ErrInvalid},
		{"stat empty path", func() error { _, err := c.Stat(ctx, ""); return err }, fs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) {
				t.Errorf("%v is not a *fs.PathError", err)
			}
		})
	}
	// Reading a directory and listing a file are errors, not hangs.
	if _, err := c.ReadFile(ctx, dir); err == nil {
		t.Error("ReadFile(dir) succeeded")
	}
	if _, err := c.ListDir(ctx, "/etc/hostname"); err == nil {
		t.Error("ListDir(file) succeeded")
	}
}

func TestLargeFileCopy(t *testing.T) {
	c := newTestClient(t)
	ctx := testContext(t)
	data := make([]byte, 10<<20+123)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "big")
	n, err := c.CopyTo(ctx, p, bytes.NewReader(data), 0o600)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("CopyTo = %d, %v", n, err)
	}
	var w slowWriter
	n, err = c.CopyFrom(ctx, p, &w)
	if err != nil || n != int64(len(data)) || !bytes.Equal(w.Bytes(), data) {
		t.Fatalf("CopyFrom = %d, %v (equal %v)", n, err, bytes.Equal(w.Bytes(), data))
	}
}

func TestCopyFromCancel(t *testing.T) {
	c := newTestClient(t)
	ctx, cancel := context.WithCancel(testContext(t))
	_, err := c.CopyFrom(ctx, "/dev/zero", cancelAfter{cancel})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("CopyFrom(/dev/zero) = %v, want context.Canceled", err)
	}
	if _, err := c.Ping(testContext(t)); err != nil {
		t.Fatal(err)
	}
}

type cancelAfter struct{ cancel context.CancelFunc }

func (w cancelAfter) Write(p []byte) (int, error) { w.cancel(); return len(p), nil }
