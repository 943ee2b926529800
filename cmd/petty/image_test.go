package main

import (
	"archive/tar"
	"compress/gzip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// busyboxTarball writes a gzip root file system tarball of a static busybox
// with /bin/sh, or skips the test without one.
func busyboxTarball(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("static busybox: %v (install busybox-static)", err)
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: now},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb)), ModTime: now},
		{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777, ModTime: now},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bb)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// TestImageCommands runs petty image build --from-tar, ls and rm on a
// private store.
func TestImageCommands(t *testing.T) {
	if m, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64"); len(m) == 0 {
		t.Skip("no Debian cloud kernel: apt-get install linux-image-cloud-amd64")
	}
	h := newHarness(t)
	cache := t.TempDir()
	agent := testutil.Agent(t)
	tarball := busyboxTarball(t)

	res := h.run(nil, "image", "build", "--from-tar", tarball, "--name", "bb", "--cache", cache, "--agent", agent)
	if res.code != 0 {
		t.Fatalf("image build: code %d, stderr %q", res.code, res.stderr)
	}
	dir := filepath.Join(cache, "images", "bb")
	want := "name: bb\nkernel: " + dir + "/vmlinux\ninitrd: " + dir + "/initrd.cpio\nrootfs: " + dir + "/rootfs.ext4\n"
	if res.stdout != want {
		t.Errorf("image build printed %q, want %q", res.stdout, want)
	}
	// Off a terminal the build's progress is plain lines, one per step.
	for _, step := range []string{"resolve inputs", "extract kernel", "initramfs", "unpack root file system", "rootfs", "store"} {
		if line := "petty: building image bb: " + step + "…\n"; !strings.Contains(res.stderr, line) {
			t.Errorf("image build's stderr lacks the line %q:\n%s", line, res.stderr)
		}
	}
	if strings.ContainsAny(res.stderr, "\r\033") {
		t.Errorf("image build's stderr redraws lines off a terminal: %q", res.stderr)
	}

	res = h.run(nil, "-v", "image", "build", "--from-tar", tarball, "--name", "bb", "--cache", cache, "--agent", agent)
	if res.code != 0 || res.stdout != want || !strings.Contains(res.stderr, "cache hit") {
		t.Errorf("second image build: code %d, stdout %q, stderr %q; want a cache hit", res.code, res.stdout, res.stderr)
	}

	res = h.run(nil, "image", "ls", "--cache", cache)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) != 2 || !regexp.MustCompile(`^NAME +SIZE +CREATED +ORIGIN$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^bb +[0-9.]+[KMG] +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +tar$`).MatchString(lines[1]) {
		t.Errorf("image ls: code %d, stdout:\n%s", res.code, res.stdout)
	}

	res = h.run(nil, "image", "rm", "--cache", cache, "nope")
	if res.code == 0 || !strings.Contains(res.stderr, `no image named "nope"`) || !strings.Contains(res.stderr, "images: bb") {
		t.Errorf("image rm nope: code %d, stderr %q", res.code, res.stderr)
	}
	res = h.run(nil, "image", "build", "--from-tar", filepath.Join(cache, "images", "bb", "manifest.json"), "--name", "broken", "--cache", cache, "--agent", agent)
	if res.code == 0 || !strings.Contains(res.stderr, "not a tar archive") {
		t.Errorf("image build of a non-tar: code %d, stderr %q", res.code, res.stderr)
	}
	res = h.run(nil, "image", "rm", "--cache", cache, "bb")
	if res.code != 0 {
		t.Errorf("image rm bb: code %d, stderr %q", res.code, res.stderr)
	}
	res = h.run(nil, "image", "ls", "--cache", cache)
	if strings.TrimSpace(res.stdout) != "NAME  SIZE  CREATED  ORIGIN" {
		t.Errorf("image ls after rm:\n%s", res.stdout)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s after rm: %v", dir, err)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1024: "1.0K", 5 << 20: "5.0M", 612 << 20: "612M", 3 << 30: "3.0G"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
