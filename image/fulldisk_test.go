package image

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fullDiskEnv names, in the child of TestStoreBuildFullDisk, the directory
// on which the child mounts a small tmpfs (inside its own mount namespace)
// and its size.
const (
	fullDiskDirEnv  = "PETTY_TEST_FULL_DISK_DIR"
	fullDiskSizeEnv = "PETTY_TEST_FULL_DISK_SIZE"
)

// TestStoreBuildFullDisk builds a --from-tar image into a store on a file
// system too small for it, a tmpfs of a few MiB mounted in a private mount
// namespace (the test binary runs itself again under `unshare --mount`):
// the build fails with an error that says the disk is full
// (errors.Is ENOSPC), and the store is left as it was, nothing half-built
// in it. Two sizes: full while the kernel is copied in, and full later,
// while the tarball is unpacked.
func TestStoreBuildFullDisk(t *testing.T) {
	if dir := os.Getenv(fullDiskDirEnv); dir != "" {
		fullDiskChild(t, dir, os.Getenv(fullDiskSizeEnv))
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs in a private mount namespace: run as root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare not found: apt-get install util-linux")
	}
	// The second size holds the kernel and the initramfs of this host, and
	// 1 MiB more: the build fails after them, unpacking the tarball.
	s := newTestStore(t) // skips without a kernel or e2fsprogs
	spec := BuildSpec{Name: "bb", FromTar: writeTar(t, busyboxMembers(t), "gzip"), AgentPath: standinAgent(t)}
	img, err := s.Build(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	var fits int64
	for _, p := range []string{img.Kernel, img.Initrd} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		fits += fi.Size()
	}
	for _, size := range []string{"4m", strconv.FormatInt(fits>>20+1, 10) + "m"} {
		t.Run(size, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0], "-test.run", "^TestStoreBuildFullDisk$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), fullDiskDirEnv+"="+dir, fullDiskSizeEnv+"="+size)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child (tmpfs of %s): %v\n%s", size, err, out)
			}
			if !strings.Contains(string(out), "full-disk error:") {
				t.Fatalf("child ran no build:\n%s", out)
			}
			t.Logf("%s", out)
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("the child's tmpfs leaked into this namespace: %v", ents)
			}
		})
	}
}

// fullDiskChild is TestStoreBuildFullDisk in the child: it mounts a tmpfs
// of size on dir, in the mount namespace unshare made for it, and builds
// into a store there.
func fullDiskChild(t *testing.T, dir, size string) {
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	s, err := OpenStore(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	spec := BuildSpec{Name: "bb", FromTar: writeTar(t, busyboxMembers(t), "gzip"), AgentPath: standinAgent(t)}
	var steps []string
	spec.Progress = func(s string) { steps = append(steps, s) }
	_, err = s.Build(context.Background(), spec)
	t.Logf("full-disk error: %v (steps %q)", err, steps)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Build on a full disk: %v, want an error that is ENOSPC", err)
	}
	if got := storeEntries(t, s); len(got) != 0 {
		t.Errorf("a failed build left %v in the store", got)
	}
	if _, err := s.Get("bb"); !errors.Is(err, ErrNoImage) {
		t.Errorf("Get after the failed build: %v, want ErrNoImage", err)
	}
}
