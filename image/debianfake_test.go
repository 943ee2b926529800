package image

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeMmdebstrap puts an mmdebstrap in $PATH that writes tarball as the
// root file system (or, with --simulate, only checks) and counts its real
// runs in the returned file.
func fakeMmdebstrap(t *testing.T, tarball string) (runs string) {
	t.Helper()
	dir := t.TempDir()
	runs = filepath.Join(dir, "runs")
	script := fmt.Sprintf(`#!/bin/sh
for a; do case "$a" in --simulate) exit 0;; esac; done
eval "out=\${$(($#-1))}"
echo "I: fake mmdebstrap writing $out"
echo run >>%q
cp %q "$out"
`, runs, tarball)
	if err := os.WriteFile(filepath.Join(dir, "mmdebstrap"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return runs
}

func countLines(t *testing.T, p string) int {
	t.Helper()
	b, err := os.ReadFile(p)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestStoreDebianCache drives the Debian build with a fake mmdebstrap and a
// fake mirror: the archive's Release date is the SOURCE_DATE_EPOCH (file
// times clamped to it) and only read with Refresh; a changed agent reuses
// the installed packages.
func TestStoreDebianCache(t *testing.T) {
	s := newTestStore(t)
	agent := standinAgent(t)
	runs := fakeMmdebstrap(t, writeTar(t, busyboxMembers(t), ""))
	var date atomic.Value
	date.Store(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debian/dists/bookworm/Release" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "Origin: Debian\nCodename: bookworm\nDate: %s\n", date.Load().(time.Time).Format(time.RFC1123))
	}))
	defer srv.Close()
	spec := BuildSpec{Mirror: srv.URL + "/debian", Release: "bookworm", AgentPath: agent}

	img, err := s.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	d1 := date.Load().(time.Time)
	if img.Name != DefaultImage || img.Origin != OriginDebian || img.Cached || img.SourceDateEpoch != d1.Unix() || img.Release != "bookworm" || img.Mirror != spec.Mirror || len(img.Packages) != len(DefaultPackages) {
		t.Errorf("first build: %+v", img.Manifest)
	}
	// The tarball's files are from 2024-05-01, after the archive's date:
	// clamped to it.
	if out := debugfs(t, img.RootFS, "stat /etc/passwd"); !strings.Contains(out, fmt.Sprintf("mtime: 0x%08x", d1.Unix())) {
		t.Errorf("/etc/passwd not clamped to %v:\n%s", d1, out)
	}

	for _, refresh := range []bool{false, true} {
		spec.Refresh = refresh
		again, err := s.Build(context.Background(), spec)
		if err != nil || !again.Cached || again.Key != img.Key {
			t.Errorf("rebuild (refresh %v) of the same archive state: cached %v, %v", refresh, again != nil && again.Cached, err)
		}
	}

	date.Store(d1.Add(24 * time.Hour))
	spec.Refresh = false
	if again, err := s.Build(context.Background(), spec); err != nil || !again.Cached {
		t.Errorf("without --refresh a moved archive is not read: cached %v, %v", again != nil && again.Cached, err)
	}
	spec.Refresh = true
	moved, err := s.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Cached || moved.Key == img.Key || moved.SourceDateEpoch != d1.Add(24*time.Hour).Unix() {
		t.Errorf("refresh after the archive moved: %+v", moved.Manifest)
	}
	if n := countLines(t, runs); n != 2 {
		t.Errorf("mmdebstrap ran %d times, want 2", n)
	}

	// A new agent: a new image, the same packages.
	b, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	agent2 := filepath.Join(t.TempDir(), "agent2")
	if err := os.WriteFile(agent2, append(b, "another agent"...), 0o755); err != nil {
		t.Fatal(err)
	}
	spec.AgentPath, spec.Refresh = agent2, false
	newAgent, err := s.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if newAgent.Cached || newAgent.Key == moved.Key {
		t.Errorf("new agent: cached %v", newAgent.Cached)
	}
	if n := countLines(t, runs); n != 2 {
		t.Errorf("mmdebstrap ran again for a new agent (%d runs)", n)
	}
	if got := debugfs(t, newAgent.RootFS, "cat /"+agentRootFSPath); !strings.HasSuffix(got, "another agent") {
		t.Error("the rebuilt image has the old agent")
	}
}
