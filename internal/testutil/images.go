package testutil

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pettyvm/petty/image"
)

// debianImage is the one default-image build of this test process.
var debianImage struct {
	once sync.Once
	img  *image.Stored
	took time.Duration
	err  error
}

// TestImageStore returns the image store that tests share across test
// binaries and runs: os.TempDir()/petty-test-images/<hash of the module
// root>/images, one per checkout, so that the images (and the Debian
// packages, which Store.Build keeps per image) survive between test runs.
// Store.Build takes a lock per image name, so concurrent test binaries
// build an image once and never see it half-built.
func TestImageStore(tb testing.TB) *image.Store {
	tb.Helper()
	root, err := ModuleRoot()
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	sum := sha256.Sum256([]byte(root))
	st, err := image.OpenStore(filepath.Join(os.TempDir(), "petty-test-images", hex.EncodeToString(sum[:6]), "images"))
	if err != nil {
		tb.Fatalf("testutil: %v", err)
	}
	return st
}

// DebianImage returns the default Debian image (image.DefaultImage) built
// with this checkout's petty-agent into [TestImageStore], building it once
// per test process; when an earlier run or another test binary built it
// from the same inputs it is a cache hit. The first build takes minutes
// (mmdebstrap downloads and installs the packages; about 3 minutes on 2
// cores here); a build for a changed agent reuses the packages (about
// 30 seconds). It skips the test when mmdebstrap is not installed or the
// host's apt sources name no Debian archive.
func DebianImage(tb testing.TB) *image.Stored {
	tb.Helper()
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		tb.Skip("testutil: mmdebstrap is not installed: run `bash hack/deps.sh` (apt-get install mmdebstrap) to build the Debian image")
	}
	if _, err := image.HostDebianSource(); err != nil {
		tb.Skipf("testutil: %v", err)
	}
	agent := Agent(tb)
	st := TestImageStore(tb)
	debianImage.once.Do(func() {
		start := time.Now()
		debianImage.img, debianImage.err = st.Build(context.Background(), image.BuildSpec{
			AgentPath: agent,
			Progress: func(step string) {
				tb.Logf("testutil: building the Debian image: %s (%v)", step, time.Since(start).Round(time.Second))
			},
		})
		debianImage.took = time.Since(start)
	})
	if debianImage.err != nil {
		tb.Fatalf("testutil: building the Debian image: %v", debianImage.err)
	}
	tb.Logf("testutil: Debian image %s (%d bytes, cached %v) after %v", debianImage.img.Dir, debianImage.img.SizeBytes, debianImage.img.Cached, debianImage.took.Round(time.Millisecond))
	return debianImage.img
}
