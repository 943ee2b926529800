package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/testutil"
	"github.com/pettyvm/petty/vm"
)

// A Firecracker run of the minimal image without --kernel and without the
// compiled kernel in the cache fails at once, naming the command that
// compiles it, and compiles nothing: $PATH holds only petty-agent, no
// compiler.
func TestResolveImageNeverCompiles(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox: apt-get install busybox-static")
	}
	agent := testutil.Agent(t)
	cache := t.TempDir()
	t.Setenv("PATH", filepath.Dir(agent))
	t.Setenv("XDG_CACHE_HOME", cache)
	f := &vmFlags{image: image.MinimalImage}
	began := time.Now()
	_, err := f.resolveImage(t.Context(), vm.Firecracker, newProgress(io.Discard, false), slog.New(slog.DiscardHandler))
	took := time.Since(began)
	if !errors.Is(err, errKernelNotBuilt) || !errors.Is(err, image.ErrKernelNotCompiled) {
		t.Fatalf("resolveImage = %v, want errKernelNotBuilt wrapping image.ErrKernelNotCompiled", err)
	}
	if !strings.Contains(err.Error(), "`"+kernelSourceBuildCommand+"`") {
		t.Errorf("error %q does not name %q", err, kernelSourceBuildCommand)
	}
	if took > time.Second {
		t.Errorf("resolveImage took %v, want well under a second", took)
	}
	var leftovers []string
	filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			leftovers = append(leftovers, p)
		}
		return nil
	})
	if len(leftovers) != 0 {
		t.Errorf("the cache holds %v after a refused run, want nothing", leftovers)
	}
}
