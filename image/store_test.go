package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// tarMember is one entry of a test tarball.
type tarMember struct {
	name, link string
	typ        byte
	mode       int64
	uid, gid   int
	data       []byte
}

// busyboxMembers is a small root file system: busybox with /bin/sh, an
// account file, a hard link and a user-owned home.
func busyboxMembers(t *testing.T) []tarMember {
	t.Helper()
	bb, err := os.ReadFile(defaultBusybox)
	if err != nil {
		t.Skipf("static busybox: %v (install busybox-static)", err)
	}
	return []tarMember{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./bin/busybox", typ: tar.TypeReg, mode: 0o755, data: bb},
		{name: "./bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		{name: "./bin/ls", typ: tar.TypeSymlink, link: "/bin/busybox"},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")},
		{name: "./etc/passwd.link", typ: tar.TypeLink, link: "./etc/passwd"},
		{name: "./home/user/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		{name: "./home/user/notes with space.txt", typ: tar.TypeReg, mode: 0o600, uid: 1000, gid: 1000, data: []byte("hi\n")},
		{name: "./dev/null", typ: tar.TypeChar, mode: 0o666},
	}
}

// writeTar writes members as a tarball compressed with comp ("", "gzip",
// "xz" or "zstd") and returns its path.
func writeTar(t *testing.T, members []tarMember, comp string) string {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, m := range members {
		h := &tar.Header{Name: m.name, Linkname: m.link, Typeflag: m.typ, Mode: m.mode, Uid: m.uid, Gid: m.gid,
			Size: int64(len(m.data)), ModTime: mtime, Format: tar.FormatPAX}
		if m.typ == tar.TypeSymlink {
			h.Mode = 0o777
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	switch comp {
	case "":
		out = raw
	case "gzip":
		w := gzip.NewWriter(&out)
		w.Write(raw.Bytes())
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw.Bytes())
		w.Close()
	case "zstd":
		enc, _ := zstd.NewWriter(nil)
		out.Write(enc.EncodeAll(raw.Bytes(), nil))
		enc.Close()
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar"+map[string]string{"": "", "gzip": ".gz", "xz": ".xz", "zstd": ".zst"}[comp])
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// newTestStore returns an empty store in a temporary directory; it skips
// the test without the host's Debian kernel or mkfs.ext4.
func newTestStore(t *testing.T) *Store {
	t.Helper()
	hostKernel(t)
	if _, err := findExt4Tools(); err != nil {
		t.Skipf("%v", err)
	}
	s, err := OpenStore(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeEntries lists the store directory, lock files left out.
func storeEntries(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), storeLockPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// debugfs runs a debugfs request on an ext4 image and returns its output.
func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	tools, err := findExt4Tools()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tools.debugfs, "-R", req, img)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("debugfs %s: %v\n%s", req, err, stderr.String())
	}
	var notes []string // debugfs's banner line left out
	for _, l := range strings.SplitAfter(stderr.String(), "\n") {
		if !strings.HasPrefix(l, "debugfs ") {
			notes = append(notes, l)
		}
	}
	return string(out) + strings.Join(notes, "")
}

func sha(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestStoreFromTar(t *testing.T) {
	s := newTestStore(t)
	agent := standinAgent(t)
	tarball := writeTar(t, busyboxMembers(t), "gzip")
	var steps []string
	spec := BuildSpec{Name: "bb", FromTar: tarball, AgentPath: agent, Progress: func(s string) { steps = append(steps, s) }}
	img, err := s.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if img.Cached {
		t.Error("first build reported a cache hit")
	}
	wantSteps := []string{"resolve inputs", "extract kernel", "initramfs", "unpack root file system", "rootfs", "store"}
	if diff := cmp.Diff(wantSteps, steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	dir := filepath.Join(s.Dir, "bb")
	if img.Dir != dir || img.Kernel != filepath.Join(dir, "vmlinux") || img.Initrd != filepath.Join(dir, "initrd.cpio") || img.RootFS != filepath.Join(dir, "rootfs.ext4") {
		t.Errorf("paths %+v", img)
	}
	m := img.Manifest
	if m.Format != 1 || m.Name != "bb" || m.Origin != OriginTar || len(m.Key) != 64 || m.Kernel != "vmlinux" || m.RootFS != "rootfs.ext4" || m.Tar == "" || m.Created.IsZero() {
		t.Errorf("manifest %+v", m)
	}
	var size int64
	for _, p := range []string{img.Kernel, img.Initrd, img.RootFS, filepath.Join(dir, manifestFile)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o444 {
			t.Errorf("%s: mode %v, want 0444 (read-only)", p, fi.Mode())
		}
		if p != filepath.Join(dir, manifestFile) {
			size += fi.Size()
		}
	}
	if m.SizeBytes != size {
		t.Errorf("size_bytes %d, want %d", m.SizeBytes, size)
	}
	if got := storeEntries(t, s); !slices.Equal(got, []string{"bb"}) {
		t.Errorf("store holds %v, want only bb", got)
	}

	// The root file system: the tarball's tree plus the agent, owners and
	// modes as the tarball says.
	agentBytes, _ := os.ReadFile(agent)
	if got := debugfs(t, img.RootFS, "cat /"+agentRootFSPath); got != string(agentBytes) {
		t.Errorf("rootfs %s: %d bytes, want the agent's %d", agentRootFSPath, len(got), len(agentBytes))
	}
	for req, want := range map[string][]string{
		"stat /bin/sh":                             {"Type: symlink", "Fast link dest: \"busybox\""},
		"stat /" + agentRootFSPath:                 {"Type: regular", "Mode:  0755", "User:     0   Group:     0"},
		"stat /home/user":                          {"Type: directory", "Mode:  0700", "User:  1000   Group:  1000"},
		"stat \"/home/user/notes with space.txt\"": {"User:  1000", "ctime: 0x66322ec0"},
		"stat /etc/passwd":                         {"Links: 2"},
	} {
		out := debugfs(t, img.RootFS, req)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("debugfs %s: no %q in\n%s", req, w, out)
			}
		}
	}
	if fsck, err := findSbinTool("e2fsck"); err == nil {
		if out, err := exec.Command(fsck, "-fn", img.RootFS).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, out)
		}
	}
	if out := debugfs(t, img.RootFS, "ls /dev"); strings.Contains(out, "null") {
		t.Errorf("device node extracted:\n%s", out)
	}

	// The initramfs: the agent as /init and the modules that mount the
	// root: virtio_blk, ext4 (built into Debian's cloud kernel) and overlay.
	raw, err := os.ReadFile(img.Initrd)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, e := range parseNewc(t, raw) {
		names[e.Name] = e.Data
	}
	load := names[modulesLoadPath]
	builtin, _ := os.ReadFile(filepath.Join(modulesRoot, kernelRelease(hostKernel(t), nil), "modules.builtin"))
	for _, mod := range []string{"virtio_blk", "ext4", "overlay"} {
		if strings.Contains(string(builtin), "/"+mod+".ko\n") {
			continue
		}
		if !strings.Contains(load, "/"+mod+".ko\n") {
			t.Errorf("modules.load lacks %s:\n%s", mod, load)
		}
	}
	if !strings.Contains(load, virtioBlock+" /lib/modules/") || !strings.Contains(load, "/overlay.ko\n") {
		t.Errorf("overlay not loaded for a block device:\n%s", load)
	}
	if _, ok := names["init"]; !ok {
		t.Error("initramfs has no /init")
	}

	// A second build of the same inputs is a cache hit, under a second.
	// On a loaded machine the scheduler alone can take that long: the best
	// of three tries counts (a hit does ~40 ms of work here).
	var took []time.Duration
	for len(took) < 3 && (len(took) == 0 || slices.Min(took) > time.Second) {
		steps = nil
		start := time.Now()
		again, err := s.Build(context.Background(), spec)
		took = append(took, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Cached || again.Key != m.Key {
			t.Fatalf("second build: cached %v, same key %v; want a cache hit", again.Cached, again.Key == m.Key)
		}
		if steps[len(steps)-1] != "cached" {
			t.Errorf("steps of a hit: %v", steps)
		}
	}
	t.Logf("cache hit took %v", took)
	if slices.Min(took) > time.Second {
		t.Errorf("cache hits took %v; want under 1s", took)
	}

	// List, Get, Remove.
	ms, err := s.List()
	if err != nil || len(ms) != 1 || ms[0].Name != "bb" {
		t.Errorf("List = %v, %v", ms, err)
	}
	if got, err := s.Get("bb"); err != nil || got.RootFS != img.RootFS {
		t.Errorf("Get = %v, %v", got, err)
	}
	if err := s.Remove("bb"); err != nil {
		t.Fatal(err)
	}
	var nie *NoImageError
	if _, err := s.Get("bb"); !errors.As(err, &nie) || !errors.Is(err, ErrNoImage) || len(nie.Have) != 0 {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := s.Remove("bb"); !errors.Is(err, ErrNoImage) {
		t.Errorf("second Remove: %v", err)
	}
	if got := storeEntries(t, s); len(got) != 0 {
		t.Errorf("store after Remove holds %v", got)
	}
}

func TestStoreDeterministic(t *testing.T) {
	agent := standinAgent(t)
	tarball := writeTar(t, busyboxMembers(t), "xz")
	var sums [2]map[string]string
	var started time.Time
	for i := range sums {
		if i > 0 {
			// Builds a second apart: no wall-clock time may reach the image.
			<-time.After(time.Until(started.Add(1100 * time.Millisecond)))
		}
		started = time.Now()
		s := newTestStore(t)
		img, err := s.Build(context.Background(), BuildSpec{Name: "det", FromTar: tarball, AgentPath: agent})
		if err != nil {
			t.Fatal(err)
		}
		if d := os.Getenv("PETTY_DET_DIR"); d != "" {
			b, _ := os.ReadFile(img.RootFS)
			os.WriteFile(filepath.Join(d, strconv.Itoa(i)), b, 0o644)
		}
		sums[i] = map[string]string{"vmlinux": sha(t, img.Kernel), "initrd": sha(t, img.Initrd), "rootfs": sha(t, img.RootFS), "key": img.Key}
	}
	if diff := cmp.Diff(sums[0], sums[1]); diff != "" {
		t.Errorf("two builds of the same inputs differ (-first +second):\n%s", diff)
	}
}

func TestStoreCompressions(t *testing.T) {
	s := newTestStore(t)
	agent := standinAgent(t)
	for _, comp := range []string{"", "zstd"} {
		img, err := s.Build(context.Background(), BuildSpec{Name: "c" + comp, FromTar: writeTar(t, busyboxMembers(t), comp), AgentPath: agent})
		if err != nil {
			t.Fatalf("%q: %v", comp, err)
		}
		if out := debugfs(t, img.RootFS, "stat /bin/busybox"); !strings.Contains(out, "Type: regular") {
			t.Errorf("%q: /bin/busybox: %s", comp, out)
		}
	}
}

func TestStoreBuildErrors(t *testing.T) {
	s := newTestStore(t)
	agent := standinAgent(t)
	members := busyboxMembers(t)
	noSh := slices.DeleteFunc(slices.Clone(members), func(m tarMember) bool { return m.name == "./bin/sh" })
	danglingSh := slices.Clone(noSh)
	danglingSh = append(danglingSh, tarMember{name: "./bin/sh", typ: tar.TypeSymlink, link: "/bin/dash"})
	notTar := filepath.Join(t.TempDir(), "not.tar")
	if err := os.WriteFile(notTar, bytes.Repeat([]byte("this is not a tar archive\n"), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	escape := writeTar(t, []tarMember{
		{name: "evil", typ: tar.TypeSymlink, link: "/"},
		{name: "evil/petty-escaped", typ: tar.TypeReg, mode: 0o644, data: []byte("x")},
	}, "")
	dotdot := writeTar(t, []tarMember{{name: "../petty-escaped", typ: tar.TypeReg, mode: 0o644, data: []byte("x")}}, "")

	tests := []struct {
		name string
		spec BuildSpec
		want error
	}{
		{"not a tar", BuildSpec{Name: "x", FromTar: notTar}, ErrNotTar},
		{"no /bin/sh", BuildSpec{Name: "x", FromTar: writeTar(t, noSh, "gzip")}, ErrNoShell},
		{"dangling /bin/sh", BuildSpec{Name: "x", FromTar: writeTar(t, danglingSh, "")}, ErrNoShell},
		{"symlink escape", BuildSpec{Name: "x", FromTar: escape}, nil},
		{"dotdot", BuildSpec{Name: "x", FromTar: dotdot}, nil},
		{"no name", BuildSpec{FromTar: notTar}, ErrNeedName},
		{"bad name", BuildSpec{Name: "../x", FromTar: notTar}, ErrBadName},
		{"minimal and tar", BuildSpec{Minimal: true, FromTar: notTar}, ErrSpec},
		{"missing tarball", BuildSpec{Name: "x", FromTar: filepath.Join(t.TempDir(), "absent.tar")}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.AgentPath = agent
			_, err := s.Build(context.Background(), tt.spec)
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Build: %v, want %v", err, tt.want)
			}
			t.Logf("error: %v", err)
			if got := storeEntries(t, s); len(got) != 0 {
				t.Errorf("a failed build left %v in the store", got)
			}
		})
	}
	for _, p := range []string{"/petty-escaped", filepath.Join(filepath.Dir(s.Dir), "petty-escaped")} {
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Errorf("a tarball wrote %s outside its root", p)
		}
	}

	// An unknown name lists the images that exist.
	if _, err := s.Build(context.Background(), BuildSpec{Name: "exists", FromTar: writeTar(t, members, ""), AgentPath: agent}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get("nope")
	var nie *NoImageError
	if !errors.As(err, &nie) || nie.Name != "nope" || !slices.Equal(nie.Have, []string{"exists"}) || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Get(nope) = %v", err)
	}
	if _, err := s.Ensure(context.Background(), BuildSpec{Name: "nope", AgentPath: agent}); !errors.Is(err, ErrNoImage) {
		t.Errorf("Ensure(nope) = %v, want ErrNoImage (only default and minimal are built on use)", err)
	}
}

// TestStoreMinimal builds the busybox initramfs image and checks that
// Ensure finds it without building.
func TestStoreMinimal(t *testing.T) {
	s := newTestStore(t)
	img, err := s.Build(context.Background(), BuildSpec{Minimal: true, AgentPath: standinAgent(t)})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != MinimalImage || img.Origin != OriginMinimal || img.RootFS != "" || img.Manifest.RootFS != "" {
		t.Errorf("minimal image %+v", img)
	}
	var steps []string
	got, err := s.Ensure(context.Background(), BuildSpec{Name: MinimalImage, Progress: func(s string) { steps = append(steps, s) }})
	if err != nil || got.Key != img.Key || len(steps) != 0 {
		t.Errorf("Ensure = %v, %v, steps %v; want the stored image, no build", got, err, steps)
	}
}

// TestStoreDebianMissingPackage runs mmdebstrap with a package apt cannot
// find: apt's own message is in the error and the store is unchanged.
func TestStoreDebianMissingPackage(t *testing.T) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Skip("mmdebstrap is not installed: run `bash hack/deps.sh` (apt-get install mmdebstrap)")
	}
	if testing.Short() {
		t.Skip("-short: runs apt-get update against the Debian mirror")
	}
	if _, err := HostDebianSource(); err != nil {
		t.Skipf("%v", err)
	}
	s := newTestStore(t)
	const pkg = "petty-no-such-package"
	_, err := s.Build(context.Background(), BuildSpec{Name: "bad", Packages: []string{pkg}, AgentPath: standinAgent(t)})
	if !errors.Is(err, ErrPackages) || !strings.Contains(err.Error(), "Unable to locate package "+pkg) {
		t.Fatalf("Build: %v\nwant ErrPackages with apt's \"Unable to locate package %s\"", err, pkg)
	}
	t.Logf("error: %v", err)
	if got := storeEntries(t, s); len(got) != 0 {
		t.Errorf("a failed build left %v in the store", got)
	}
}

// TestExtractTarCanceled checks that extraction stops at ctx's end.
func TestExtractTarCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f, err := os.Open(writeTar(t, busyboxMembers(t), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := extractTar(ctx, f, t.TempDir(), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("extractTar = %v, want context.Canceled", err)
	}
}

// TestStoreConcurrentAndReplace builds one name from two goroutines at
// once (the lock makes the second a cache hit), then from other inputs,
// which replaces the image in one rename.
func TestStoreConcurrentAndReplace(t *testing.T) {
	s := newTestStore(t)
	agent := standinAgent(t)
	members := busyboxMembers(t)
	spec := BuildSpec{Name: "same", FromTar: writeTar(t, members, "gzip"), AgentPath: agent}
	type result struct {
		img *Stored
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			img, err := s.Build(context.Background(), spec)
			results <- result{img, err}
		}()
	}
	var cached int
	var keys []string
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.img.Cached {
			cached++
		}
		keys = append(keys, r.img.Key)
	}
	if cached != 1 || keys[0] != keys[1] {
		t.Errorf("concurrent builds: %d cache hits (want 1), keys %v", cached, keys)
	}
	old, err := s.Get("same")
	if err != nil {
		t.Fatal(err)
	}

	more := append(slices.Clone(members), tarMember{name: "./etc/motd", typ: tar.TypeReg, mode: 0o644, data: []byte("new\n")})
	spec.FromTar = writeTar(t, more, "")
	img, err := s.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if img.Cached || img.Key == old.Key || img.Dir != old.Dir {
		t.Errorf("rebuild from other inputs: cached %v, same key %v, dir %s", img.Cached, img.Key == old.Key, img.Dir)
	}
	if out := debugfs(t, img.RootFS, "cat /etc/motd"); !strings.Contains(out, "new") {
		t.Errorf("replaced image lacks the new file: %q", out)
	}
	if got := storeEntries(t, s); !slices.Equal(got, []string{"same"}) {
		t.Errorf("store holds %v after the replacement, want only same", got)
	}
}

// TestStoreFromTarUnprivileged builds as an unprivileged user would: no
// chown while extracting; debugfs gives every inode the tarball's owner.
func TestStoreFromTarUnprivileged(t *testing.T) {
	s := newTestStore(t)
	setVar(t, &geteuid, func() int { return 1000 })
	img, err := s.Build(context.Background(), BuildSpec{Name: "unpriv", FromTar: writeTar(t, busyboxMembers(t), ""), AgentPath: standinAgent(t)})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/home/user":                          "User:  1000   Group:  1000",
		"/bin/busybox":                        "User:     0   Group:     0",
		"/" + agentRootFSPath:                 "User:     0   Group:     0",
		"\"/home/user/notes with space.txt\"": "User:  1000   Group:  1000",
	} {
		if out := debugfs(t, img.RootFS, "stat "+path); !strings.Contains(out, want) {
			t.Errorf("%s: no %q in\n%s", path, want, out)
		}
	}
	if fsck, err := findSbinTool("e2fsck"); err == nil {
		if out, err := exec.Command(fsck, "-fn", img.RootFS).CombinedOutput(); err != nil {
			t.Errorf("e2fsck -fn: %v\n%s", err, out)
		}
	}
}
