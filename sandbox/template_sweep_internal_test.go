package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSweepStaleBuilds(t *testing.T) {
	root := t.TempDir()
	old := time.Now().Add(-2 * staleBuildAge)
	for _, d := range []struct {
		name string
		old  bool
	}{
		{buildPrefix + "crashed", true},
		{buildPrefix + "live", false},
		{"default-256m-1c-0123456789abcdef", true}, // a template, however old
	} {
		p := filepath.Join(root, d.name)
		if err := os.MkdirAll(filepath.Join(p, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		if d.old {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweepStaleBuilds(root, time.Now().Add(-staleBuildAge))
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{buildPrefix + "live", "default-256m-1c-0123456789abcdef"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("left after the sweep (-want +got):\n%s", diff)
	}
}
