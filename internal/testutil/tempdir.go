package testutil

import (
	"os"
	"testing"
)

// ShortTempDir returns a new directory directly under /tmp, removed when the
// test ends. Unix socket paths must stay under 108 bytes, which t.TempDir's
// long names can exceed.
func ShortTempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/tmp", "pt-")
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	tb.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("testutil: removing %s: %v", dir, err)
		}
	})
	return dir
}
