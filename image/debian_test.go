package image_test

import (
	"bytes"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/internal/testutil"
)

// TestDebianImage really builds the default image with mmdebstrap (minutes
// the first time, then a cache hit) and checks its root file system.
func TestDebianImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the Debian image (about 3 minutes the first time)")
	}
	img := testutil.DebianImage(t)
	if img.Name != image.DefaultImage || img.Origin != image.OriginDebian || img.RootFS == "" || img.Release == "" || img.Mirror == "" {
		t.Fatalf("default image %+v", img.Manifest)
	}
	debugfs := func(req string) string {
		t.Helper()
		var stderr bytes.Buffer
		cmd := exec.Command("debugfs", "-R", req, img.RootFS)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("debugfs %s: %v\n%s", req, err, stderr.String())
		}
		return string(out)
	}
	bin := debugfs("ls /usr/bin")
	for _, cmd := range []string{"python3", "node", "npm", "git", "bash", "curl", "ps", "pip3"} {
		if !containsWord(bin, cmd) {
			t.Errorf("/usr/bin has no %s", cmd)
		}
	}
	if !containsWord(debugfs("ls /usr/sbin"), "ip") && !containsWord(bin, "ip") {
		t.Error("no ip (iproute2)")
	}
	if !strings.Contains(debugfs("ls /usr/lib/python3.11"), "venv") {
		t.Error("python3 has no venv module")
	}
	if !containsWord(debugfs("ls /usr/local/sbin"), "petty-agent") {
		t.Error("no /usr/local/sbin/petty-agent")
	}
	passwd := debugfs("cat /etc/passwd")
	if !strings.Contains(passwd, "\nuser:x:1000:1000:user:/home/user:/bin/bash\n") || !strings.HasPrefix(passwd, "root:x:0:0:") {
		t.Errorf("/etc/passwd:\n%s", passwd)
	}
	if home := debugfs("stat /home/user"); !strings.Contains(home, "User:  1000   Group:  1000") {
		t.Errorf("/home/user:\n%s", home)
	}
	if lists := debugfs("ls /var/lib/apt/lists"); strings.Contains(lists, "Packages") {
		t.Errorf("apt lists left in the image:\n%s", lists)
	}
	t.Logf("default image: Debian %s from %s (archive %s), %d bytes", img.Release, img.Mirror, img.ArchiveDate, img.SizeBytes)

	t.Run("runs", func(t *testing.T) { runInImage(t, img.RootFS) })
}

// runInImage mounts the root file system read-only (a loop device, in a
// private mount and pid namespace that dies with the command) and runs
// python3, node, npm, git, pip and bash in it with chroot.
func runInImage(t *testing.T, rootfs string) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount -o loop) to run programs of the image")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not found: apt-get install util-linux")
	}
	mnt := t.TempDir()
	const script = `set -e
mount -o ro,loop "$1" "$2"
mount -t proc proc "$2/proc"
mount --rbind /dev "$2/dev"
chroot "$2" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root /bin/bash -c '
python3 -c "import sys, venv, ssl; print(\"python\", sys.version_info[0])"
node -e "console.log(\"node\", typeof process.versions.node)"
npm --version >/dev/null && echo npm ok
git --version | cut -d" " -f1-2
pip3 --version >/dev/null && echo pip ok
echo bash $BASH_VERSINFO
id user
'`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "sh", "-c", script, "sh", rootfs, mnt).CombinedOutput()
	if err != nil {
		t.Fatalf("running in the image: %v\n%s", err, out)
	}
	for _, want := range []string{"python 3\n", "node string\n", "npm ok\n", "git version\n", "pip ok\n", "bash 5\n", "uid=1000(user) gid=1000(user)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	t.Logf("in the image:\n%s", out)
}

// containsWord reports whether debugfs ls output lists name.
func containsWord(ls, name string) bool {
	for _, f := range strings.Fields(ls) {
		if f == name {
			return true
		}
	}
	return false
}

// TestDebianImageCacheHit: building the default image again from the same
// inputs is a cache hit in under a second (the best of three tries: on a
// loaded machine the scheduler alone can take that long).
func TestDebianImageCacheHit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the Debian image (about 3 minutes the first time)")
	}
	img := testutil.DebianImage(t)
	st := testutil.TestImageStore(t)
	var took []time.Duration
	for len(took) < 3 && (len(took) == 0 || slices.Min(took) > time.Second) {
		start := time.Now()
		again, err := st.Build(t.Context(), image.BuildSpec{AgentPath: testutil.Agent(t)})
		took = append(took, time.Since(start))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Cached || again.Key != img.Key {
			t.Fatalf("rebuild: cached %v, key %s (first %s); want a cache hit", again.Cached, again.Key, img.Key)
		}
	}
	t.Logf("cache hits of the default image took %v", took)
	if slices.Min(took) > time.Second {
		t.Errorf("cache hits took %v, want under a second", took)
	}
}
