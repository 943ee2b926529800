package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests run the real containerd (Debian's 1.6) with this
// shim on its PATH and drive it with the real ctr, as a user would.

// e2eFix says what the tests need.
const e2eFix = "run as root with containerd, runc, qemu-system-x86, busybox-static and linux-image-cloud-amd64 (bash hack/deps.sh --with-containerd)"

const (
	testImage     = "petty.test/busybox:latest"
	testNamespace = "petty-e2e"
	criNamespace  = "k8s.io" // the CRI plugin's
	pauseImage    = "petty.test/pause:latest"
)

// env is a private containerd and the paths the tests need.
type env struct {
	t    *testing.T
	ns   string // containerd namespace of the tests' containers
	dir  string // short temporary directory: containerd's root, state, socket
	sock string
	bin  string // the shim and the agent
}

var (
	envOnce sync.Once
	envErr  error
	theEnv  *env
)

func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU guests under a real containerd; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: " + e2eFix)
	}
	for _, b := range []string{"containerd", "ctr", "qemu-system-x86_64", "busybox"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not found: %s", b, e2eFix)
		}
	}
	if k, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64"); len(k) == 0 {
		t.Skip("no /boot/vmlinuz-*-cloud-amd64: " + e2eFix)
	}
	if _, err := os.Stat(virtiofsdPath); err != nil {
		t.Skipf("no %s: %s", virtiofsdPath, e2eFix)
	}
}

// startContainerd builds the shim and the agent, starts a containerd of
// its own (root, state and socket in a temporary directory; the CRI plugin
// only with cri, serving runtime handler "petty") and imports the test
// images. It stops containerd when the test ends. extraEnv (KEY=VALUE)
// reaches containerd and so the shim.
func startContainerd(t *testing.T, cri bool, extraEnv ...string) *env {
	t.Helper()
	requireE2E(t)
	dir, err := os.MkdirTemp("", "pctd-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ns: testNamespace, dir: dir, sock: filepath.Join(dir, "c.sock"), bin: filepath.Join(dir, "bin")}
	if cri {
		e.ns = criNamespace
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	build(t, ".", filepath.Join(e.bin, "containerd-shim-petty-v2"))
	build(t, "../../cmd/petty-agent", filepath.Join(e.bin, "petty-agent"))
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.sock, e.sock+".ttrpc")
	if cri {
		// The README's configuration, with the test's pause image and no
		// CNI (the test pods use the host's network).
		cfg += fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.petty]
    runtime_type = "io.containerd.petty.v2"
`, pauseImage, filepath.Join(dir, "cni", "bin"), filepath.Join(dir, "cni", "conf"))
	} else {
		cfg = "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n" + cfg
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Env = append(os.Environ(), "PATH="+e.bin+":"+os.Getenv("PATH"), envCache+"="+filepath.Join(dir, "cache"))
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir // containerd finds the shim in PATH, never in the package's directory
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.removeAll()
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		logf.Close()
		// containerd leaves its snapshots' overlay mounts to the next start.
		exec.Command("umount", "-R", "-l", filepath.Join(dir, "root")).Run()
		exec.Command("umount", "-R", "-l", filepath.Join(dir, "state")).Run()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			var shim []string
			for _, l := range strings.Split(string(b), "\n") {
				if (strings.Contains(l, "petty") || strings.Contains(l, "shim")) && !strings.Contains(l, "loading plugin") {
					shim = append(shim, l)
				}
			}
			t.Logf("the shim's lines of the containerd log:\n%s", strings.Join(shim, "\n"))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := e.ctr(context.Background(), "version"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not answer")
		}
		time.Sleep(100 * time.Millisecond)
	}
	archive := filepath.Join(dir, "busybox.tar")
	writeBusyboxArchive(t, archive)
	if out, err := e.ctr(context.Background(), "image", "import", archive); err != nil {
		t.Fatalf("ctr image import: %v\n%s", err, out)
	}
	return e
}

func build(t *testing.T, pkg, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// ctrCmd returns a ctr command against the private containerd.
func (e *env) ctrCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ctr", append([]string{"-a", e.sock, "-n", e.ns}, args...)...)
}

// ctr runs ctr and returns its combined output.
func (e *env) ctr(ctx context.Context, args ...string) (string, error) {
	b, err := e.ctrCmd(ctx, args...).CombinedOutput()
	return string(b), err
}

// run is "ctr run --rm --runtime io.containerd.petty.v2 IMAGE ID ARGS...".
func (e *env) run(ctx context.Context, id string, args ...string) *exec.Cmd {
	return e.ctrCmd(ctx, append([]string{"run", "--rm", "--runtime", RuntimeName, testImage, id}, args...)...)
}

// removeAll force-deletes the namespace's tasks and containers.
func (e *env) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _ := e.ctr(ctx, "containers", "list", "-q")
	for _, id := range strings.Fields(out) {
		e.ctr(ctx, "task", "delete", "-f", id)
		e.ctr(ctx, "containers", "delete", id)
	}
}

// exitCode is the exit code of a finished command.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// writeBusyboxArchive writes a docker-archive image (as "docker save"
// does) of a root file system holding the host's static busybox.
func writeBusyboxArchive(t *testing.T, path string) {
	t.Helper()
	bbPath, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(bbPath)
	if err != nil {
		t.Fatal(err)
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	now := time.Unix(0, 0)
	for _, d := range []string{"bin/", "dev/", "etc/", "proc/", "sys/", "tmp/"} {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}))
	}
	must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: now}))
	_, err = tw.Write(bb)
	must(t, err)
	for _, a := range []string{"sh", "cat", "echo", "uname", "sleep", "ls", "ps", "stty", "tty", "true", "hostname", "head", "tr", "wc", "pwd", "grep", "nproc"} {
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", ModTime: now}))
	}
	must(t, tw.Close())
	sum := sha256.Sum256(layer.Bytes())
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, hex.EncodeToString(sum[:]))
	// The pause image of CRI pod sandboxes: the same layer, a process
	// that waits for SIGTERM.
	pause := fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh","-c","trap 'exit 0' TERM; while :; do sleep 1; done"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, hex.EncodeToString(sum[:]))
	manifest := `[{"Config":"config.json","RepoTags":["` + testImage + `"],"Layers":["layer.tar"]},` +
		`{"Config":"pause.json","RepoTags":["` + pauseImage + `"],"Layers":["layer.tar"]}]`
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	aw := tar.NewWriter(f)
	for _, m := range []struct {
		name string
		data []byte
	}{{"manifest.json", []byte(manifest)}, {"config.json", []byte(config)}, {"pause.json", []byte(pause)}, {"layer.tar", layer.Bytes()}} {
		must(t, aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: now}))
		_, err := aw.Write(m.data)
		must(t, err)
	}
	must(t, aw.Close())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// leftovers lists what a pod leaves on the host: its state directory,
// virtiofsd and QEMU processes of the shim, and mounts under the shim's or
// containerd's directories.
func leftovers(e *env) []string {
	var out []string
	pods, _ := filepath.Glob(filepath.Join(stateRoot, e.ns+"-*"))
	out = append(out, pods...)
	if b, err := exec.Command("pgrep", "-af", "virtiofsd.*"+stateRoot+"/"+e.ns).Output(); err == nil {
		out = append(out, strings.TrimSpace(string(b)))
	}
	if b, err := exec.Command("pgrep", "-af", "qemu-system-x86_64.*"+stateRoot+"/"+e.ns).Output(); err == nil {
		out = append(out, strings.TrimSpace(string(b)))
	}
	if b, err := exec.Command("pgrep", "-af", "containerd-shim-petty-v2.*"+e.sock).Output(); err == nil {
		out = append(out, strings.TrimSpace(string(b)))
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	sc := bufio.NewScanner(bytes.NewReader(mounts))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 1 && (strings.HasPrefix(f[1], stateRoot+"/"+e.ns) || strings.HasPrefix(f[1], filepath.Join(e.dir, "state"))) {
			out = append(out, "mount "+f[1])
		}
	}
	return out
}

// waitNoLeftovers waits for the shims to exit and checks that nothing of
// theirs is left.
func waitNoLeftovers(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := leftovers(e)
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("leftovers on the host: %q", l)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
