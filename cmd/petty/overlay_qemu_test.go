package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/internal/testutil"
)

// testImageDir makes an image directory (manifest.json, kernel, initrd,
// rootfs.ext4) whose root file system is a busybox tree with root and
// user (uid 1000) built with mkfs.ext4 -d, and returns it with the
// sha256 of its rootfs. The kernel and initramfs are testutil's guest
// image (whose module list has ext4 and overlay).
func testImageDir(t *testing.T) (dir, baseSum string) {
	t.Helper()
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not found: apt-get install e2fsprogs")
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skipf("busybox not found: %s", testutil.QEMUFix)
	}
	img := testutil.GuestImage(t)
	dir = t.TempDir()
	tree := filepath.Join(t.TempDir(), "tree")
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home/user", "tmp", "proc", "sys", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(filepath.Join(tree, "tmp"), 0o1777)
	_ = os.Chmod(filepath.Join(tree, "root"), 0o700)
	if err := os.Chown(filepath.Join(tree, "home/user"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(tree, "bin", applet))
		}
	}
	files := map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
		"etc/group":       "root:x:0:\nuser:x:1000:\nextra:x:2000:user\n",
		"etc/base-marker": "from the base\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := filepath.Join(dir, "rootfs.ext4")
	if out, err := exec.Command(mkfs, "-q", "-F", "-d", tree, "-L", "petty-test-base", rootfs, "32M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 -d: %v\n%s", err, out)
	}
	for name, target := range map[string]string{"vmlinux": img.Kernel, "initrd.cpio": img.Initrd} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	manifest, _ := json.Marshal(map[string]any{
		"format": 1, "name": "busybox-test", "origin": "tar",
		"kernel": "vmlinux", "initrd": "initrd.cpio", "rootfs": "rootfs.ext4",
	})
	if err := os.WriteFile(filepath.Join(dir, manifestName), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, fileSHA256(t, rootfs)
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestQEMUOverlayRoot boots an image with a root file system: the base
// read-only below a per-VM scratch layer, the agent as PID 1 of the overlay
// root. It checks the overlay, writes staying in their VM (a detached one
// and a concurrent and a later run), the base's hash, the host name, exec
// as user, --env, --workdir, --timeout and the reaping of orphans.
func TestQEMUOverlayRoot(t *testing.T) {
	h := newQEMUHarness(t)
	imgDir, sum := testImageDir(t)
	img := []string{"--image", imgDir, "--vmm", "qemu", "--memory", "256", "--vcpus", "1", "--disk-size", "64MiB"}

	start := time.Now()
	res := h.run(nil, append([]string{"run", "--detach", "--name", "box"}, img...)...)
	if res.code != 0 || res.stdout != "box\n" {
		t.Fatalf("run --detach: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	t.Logf("detached boot: %v", time.Since(start))
	r := h.readRecord("box")
	defer reapOrphan(t, r.SupervisorPID)
	exec := func(flags []string, args ...string) result {
		t.Helper()
		return h.run(nil, append(append(append([]string{"exec"}, flags...), "box", "--"), args...)...)
	}

	t.Run("overlay root", func(t *testing.T) {
		res := exec(nil, "sh", "-c", `grep " / " /proc/mounts; cat /etc/base-marker; echo box > /etc/written && cat /etc/written; hostname; echo $$`)
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if res.code != 0 || len(lines) != 5 || !strings.HasPrefix(lines[0], "overlay / overlay ") || !strings.Contains(lines[0], "volatile") ||
			lines[1] != "from the base" || lines[2] != "box" || lines[3] != "box" {
			t.Fatalf("code %d, stdout %q, stderr %q; want / an overlay, the base's file, a write, host name box", res.code, res.stdout, res.stderr)
		}
		res = exec(nil, "grep", "-c", "^127.0.1.1.box$", "/etc/hosts")
		if res.code != 0 || res.stdout != "1\n" {
			t.Errorf("/etc/hosts does not name box: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		res = exec(nil, "sh", "-c", `stat -c %a /dev/shm; echo in | cat /dev/stdin; readlink /dev/fd`)
		if res.code != 0 || res.stdout != "1777\nin\n/proc/self/fd\n" {
			t.Errorf("/dev/shm, /dev/stdin, /dev/fd: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		res = exec(nil, "sh", "-c", "ls /dev/vda /dev/vdb; cat /sys/block/vda/ro")
		if res.code != 0 || !strings.Contains(res.stdout, "/dev/vdb") || !strings.HasSuffix(strings.TrimSpace(res.stdout), "1") {
			t.Errorf("PID 1 / devices: code %d, stdout %q, stderr %q (want vda read-only)", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("user", func(t *testing.T) {
		res := exec([]string{"--user", "user"}, "sh", "-c", `id -u; id -g; id -G; echo $HOME $USER; pwd; touch /etc/passwd 2>/dev/null && echo wrote-passwd || echo denied`)
		want := "1000\n1000\n1000 2000\n/home/user user\n/home/user\ndenied\n"
		if res.code != 0 || res.stdout != want {
			t.Errorf("--user user: code %d, stdout %q, want %q, stderr %q", res.code, res.stdout, want, res.stderr)
		}
		res = exec(nil, "sh", "-c", `id -u; echo $HOME; pwd`)
		if res.code != 0 || res.stdout != "0\n/root\n/root\n" {
			t.Errorf("root: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
		res = exec([]string{"--user", "nobody-here"}, "true")
		if res.code == 0 || !strings.Contains(res.stderr, "nobody-here") {
			t.Errorf("unknown user: code %d, stderr %q", res.code, res.stderr)
		}
	})

	t.Run("env and workdir", func(t *testing.T) {
		res := exec([]string{"--env", "FOO=bar baz", "-e", "LANG=C", "--workdir", "/tmp"}, "sh", "-c", `echo "$FOO"; echo $LANG; pwd; echo $PATH`)
		want := "bar baz\nC\n/tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
		if res.code != 0 || res.stdout != want {
			t.Errorf("code %d, stdout %q, want %q, stderr %q", res.code, res.stdout, want, res.stderr)
		}
		res = exec(nil, "sh", "-c", `echo $LANG`)
		if res.stdout != "C.UTF-8\n" {
			t.Errorf("default LANG: %q", res.stdout)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		res := exec([]string{"--timeout", "1s"}, "sh", "-c", "sleep 100 & sleep 100")
		took := time.Since(start)
		if res.code != exitTimedOut || took > 4*time.Second {
			t.Errorf("--timeout 1s: code %d after %v, want %d within ~2s; stderr %q", res.code, took, exitTimedOut, res.stderr)
		}
		t.Logf("--timeout 1s returned %d after %v", res.code, took)
		res = exec(nil, "sh", "-c", `for p in /proc/[0-9]*; do c=$(cat $p/cmdline 2>/dev/null | tr '\0' ' '); case "$c" in "sleep 100 ") echo left: $p;; esac; done; true`)
		if res.code != 0 || res.stdout != "" {
			t.Errorf("process group not gone: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("reaping", func(t *testing.T) {
		// The inner sh exits at once: its child, sleep, is orphaned to
		// PID 1 (the agent) and exits 0.3 s later.
		res := exec(nil, "sh", "-c", `sh -c 'sleep 0.3 &'; sleep 1.5; for p in /proc/[0-9]*; do grep -q "^State:.*Z" $p/status 2>/dev/null && echo zombie $p; done; true`)
		if res.code != 0 || res.stdout != "" {
			t.Errorf("zombies: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
		}
	})

	t.Run("concurrent and next VMs", func(t *testing.T) {
		check := `for f in /etc/written /etc/from-run; do [ -e $f ] && echo "sees $f"; done; echo run > /etc/from-run; cat /etc/from-run; hostname`
		res := h.run(nil, append(append([]string{"run"}, img...), "--", "sh", "-c", check)...)
		if res.code != 0 || res.stdout != "run\npetty\n" {
			t.Errorf("concurrent VM: code %d, stdout %q, want %q; stderr %q", res.code, res.stdout, "run\npetty\n", res.stderr)
		}
		if res := exec(nil, "cat", "/etc/written"); res.stdout != "box\n" {
			t.Errorf("box lost its own write: %q %q", res.stdout, res.stderr)
		}
		h.stopAndCheckGone(t, "box", r)
		res = h.run(nil, append(append([]string{"run"}, img...), "--", "sh", "-c", check)...)
		if res.code != 0 || res.stdout != "run\npetty\n" {
			t.Errorf("next VM: code %d, stdout %q, want %q; stderr %q", res.code, res.stdout, "run\npetty\n", res.stderr)
		}
	})

	if got := fileSHA256(t, filepath.Join(imgDir, "rootfs.ext4")); got != sum {
		t.Errorf("the base changed: sha256 %s, was %s", got, sum)
	}
}

// TestQEMUUnknownImage checks that an unknown image name fails before any
// boot, listing the store's images.
func TestQEMUUnknownImage(t *testing.T) {
	h := newQEMUHarness(t)
	var cache string
	for _, kv := range h.env {
		if v, ok := strings.CutPrefix(kv, "XDG_CACHE_HOME="); ok {
			cache = v
		}
	}
	store := filepath.Join(cache, "petty", "images")
	if err := os.MkdirAll(filepath.Join(store, "alpha"), 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Join(store, "alpha"))
	if err := os.WriteFile(filepath.Join(store, "alpha", manifestName), []byte(`{"format":1,"name":"alpha","kernel":"vmlinux","initrd":"initrd.cpio","rootfs":""}`), 0o644); err != nil {
		t.Fatal(err)
	}
	res := h.run(nil, "run", "--vmm", "qemu", "--image", "nosuch", "--", "true")
	if res.code == 0 || !strings.Contains(res.stderr, `unknown image "nosuch"`) || !strings.Contains(res.stderr, "alpha") {
		t.Errorf("code %d, stderr %q: want an unknown-image error listing alpha", res.code, res.stderr)
	}
	res = h.run(nil, "run", "--vmm", "qemu", "--image", t.TempDir(), "--", "true")
	if res.code == 0 || !strings.Contains(res.stderr, "not an image directory") {
		t.Errorf("image path without manifest: code %d, stderr %q", res.code, res.stderr)
	}
}

// TestQEMUOverlayRootBadBase boots an image whose root file system is not
// ext4: the guest's init cannot mount it and the boot fails with its
// reason, instead of running commands in the initramfs.
func TestQEMUOverlayRootBadBase(t *testing.T) {
	h := newQEMUHarness(t)
	imgDir, _ := testImageDir(t)
	if err := os.WriteFile(filepath.Join(imgDir, "rootfs.ext4"), make([]byte, 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := h.run(nil, "run", "--image", imgDir, "--vmm", "qemu", "--memory", "256", "--vcpus", "1", "--boot-timeout", "60s", "--", "true")
	if res.code == 0 || !strings.Contains(res.stderr, "mount the base /dev/vda read-only") {
		t.Errorf("code %d, stderr %q: want a failed boot naming the base", res.code, res.stderr)
	}
	t.Logf("failed after %v", time.Since(start))
}
