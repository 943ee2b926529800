package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test; a
// test can wait for the text it expects without polling.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every Write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.changed)
	s.changed = make(chan struct{})
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer holds want, or until done is closed (the
// writer is gone) or timeout passes; it reports whether want arrived.
func (s *syncBuffer) waitFor(want string, done <-chan struct{}, timeout time.Duration) bool {
	return s.waitUntil(func(b string) bool { return strings.Contains(b, want) }, done, timeout)
}

// waitUntil is waitFor with a predicate on the whole buffer.
func (s *syncBuffer) waitUntil(ok func(string) bool, done <-chan struct{}, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		has, changed := ok(s.b.String()), s.changed
		s.mu.Unlock()
		if has {
			return true
		}
		select {
		case <-changed:
		case <-done:
			return ok(s.String())
		case <-timer.C:
			return false
		}
	}
}

// fakeProc is one running fake firecracker.
type fakeProc struct {
	t      *testing.T
	dir    string
	sock   string
	cmd    *exec.Cmd
	ready  *os.File // read end of FAKEFC_READY_FD
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's result, valid after done
}

// startFake starts the fake with --api-sock <dir>/api.sock plus args, env
// added to the environment, and FAKEFC_READY_FD set. It does not wait for
// the fake to be ready.
func startFake(t *testing.T, dir string, env []string, args ...string) *fakeProc {
	t.Helper()
	bin := testutil.FakeFirecracker(t)
	p := &fakeProc{t: t, dir: dir, sock: filepath.Join(dir, "api.sock"), stdout: newSyncBuffer(), stderr: newSyncBuffer(), done: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.ready = r
	t.Cleanup(func() { r.Close() })
	p.cmd = exec.Command(bin, append([]string{"--api-sock", p.sock}, args...)...)
	p.cmd.Env = append(append(os.Environ(), env...), "FAKEFC_READY_FD=3")
	p.cmd.ExtraFiles = []*os.File{w}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	// A guest that outlives the fake holds its output pipes: Wait must
	// not wait for them for long.
	p.cmd.WaitDelay = time.Second
	err = p.cmd.Start()
	w.Close() // the fake holds the write end: EOF once it has exited
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// startReady starts the fake and waits for its API socket.
func startReady(t *testing.T, env ...string) *fakeProc {
	t.Helper()
	p := startFake(t, testutil.ShortTempDir(t), env)
	p.waitSocket()
	return p
}

// waitReady waits for the fake's "ready" line on FAKEFC_READY_FD: its startup
// is over, and its API socket, if it makes one, accepts connections. It fails
// the test when the fake exits first.
func (p *fakeProc) waitReady() {
	p.t.Helper()
	_ = p.ready.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(p.ready).ReadString('\n')
	if line == "ready\n" {
		return
	}
	if errors.Is(err, io.EOF) {
		<-p.done
		p.t.Fatalf("fake exited before it was ready: %v\nstderr: %s", p.err, p.stderr.String())
	}
	p.t.Fatalf("waiting for the fake to be ready: %q, %v", line, err)
}

// waitSocket waits until the fake is ready and checks that its API socket
// accepts connections.
func (p *fakeProc) waitSocket() {
	p.t.Helper()
	p.waitReady()
	c, err := net.Dial("unix", p.sock)
	if err != nil {
		p.t.Fatalf("ready, but the API socket refuses: %v", err)
	}
	c.Close()
}

// wait returns the exit code once the fake has exited.
func (p *fakeProc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the fake did not exit")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// hasExited reports whether the fake has exited, without waiting.
func (p *fakeProc) hasExited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// apiConn is one keep-alive HTTP connection to the fake's API socket.
type apiConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (p *fakeProc) conn() *apiConn {
	p.t.Helper()
	c, err := net.Dial("unix", p.sock)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return &apiConn{t: p.t, c: c, br: bufio.NewReader(c)}
}

// do sends one request and reads its response; extra header lines may be given.
func (a *apiConn) do(method, path, body string, headers ...string) (int, string) {
	a.t.Helper()
	status, b, err := a.try(method, path, body, headers...)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, b
}

func (a *apiConn) try(method, path, body string, headers ...string) (int, string, error) {
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n", method, path)
	for _, h := range headers {
		req.WriteString(h + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n" + body)
	if _, err := io.WriteString(a.c, req.String()); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(a.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.Close {
		return 0, "", errors.New("the fake asked to close the connection")
	}
	return resp.StatusCode, string(b), nil
}

// ok expects 204 No Content.
func (a *apiConn) ok(method, path, body string) {
	a.t.Helper()
	if status, b := a.do(method, path, body); status != http.StatusNoContent {
		a.t.Fatalf("%s %s %s: got %d %s, want 204", method, path, body, status, b)
	}
}

// fault expects 400 with a fault_message containing want.
func (a *apiConn) fault(method, path, body, want string) {
	a.t.Helper()
	status, b := a.do(method, path, body)
	var f struct {
		FaultMessage string `json:"fault_message"`
	}
	dec := json.NewDecoder(strings.NewReader(b))
	dec.DisallowUnknownFields()
	if status != http.StatusBadRequest || dec.Decode(&f) != nil || !strings.Contains(f.FaultMessage, want) {
		a.t.Fatalf("%s %s %s: got %d %s, want 400 with a fault_message containing %q", method, path, body, status, b, want)
	}
}

func (a *apiConn) getJSON(path string, v any) {
	a.t.Helper()
	status, b := a.do("GET", path, "")
	if status != http.StatusOK {
		a.t.Fatalf("GET %s: %d %s", path, status, b)
	}
	if err := json.Unmarshal([]byte(b), v); err != nil {
		a.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

func (a *apiConn) state() string {
	a.t.Helper()
	var info instanceInfo
	a.getJSON("/", &info)
	return info.State
}

// touch creates an empty file in dir and returns its path.
func touch(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// configure sets up a bootable VM: kernel, root drive, vsock at <dir>/v.sock.
func configure(t *testing.T, p *fakeProc, a *apiConn) {
	t.Helper()
	kernel, rootfs := touch(t, p.dir, "vmlinux"), touch(t, p.dir, "rootfs.ext4")
	a.ok("PUT", "/machine-config", `{"vcpu_count":2,"mem_size_mib":256}`)
	a.ok("PUT", "/boot-source", `{"kernel_image_path":`+q(kernel)+`,"boot_args":"console=ttyS0 reboot=k panic=1"}`)
	a.ok("PUT", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":`+q(rootfs)+`,"is_root_device":true,"is_read_only":false}`)
	a.ok("PUT", "/vsock", `{"guest_cid":3,"uds_path":`+q(filepath.Join(p.dir, "v.sock"))+`}`)
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(testutil.FakeFirecracker(t), "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "Firecracker v1.16.1" {
		t.Fatalf("--version: %q, %v", out, err)
	}
}

func TestBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "bogus"},
		{"stray argument", []string{"stray"}, "stray"},
		{"no-api without config-file", []string{"--no-api"}, "config-file"},
		{"bad id", []string{"--id", "a/b"}, "Invalid instance ID"},
		{"bad level", []string{"--level", "Loud"}, "Loud"},
		{"missing log file", []string{"--log-path", "/nonexistent/log"}, "/nonexistent/log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startFake(t, testutil.ShortTempDir(t), nil, tc.args...)
			if code := p.wait(); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(p.stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", p.stderr.String(), tc.want)
			}
			if _, err := os.Stat(p.sock); err == nil {
				t.Error("the API socket was created")
			}
		})
	}
}

func TestSingleDashAndEqualsFlags(t *testing.T) {
	dir := testutil.ShortTempDir(t)
	sock := filepath.Join(dir, "other.sock")
	p := startFake(t, dir, nil, "-api-sock="+sock, "--id", "vm-1", "--level", "debug", "--no-seccomp", "--boot-timer")
	p.sock = sock
	p.waitSocket()
	var info instanceInfo
	p.conn().getJSON("/", &info)
	want := instanceInfo{ID: "vm-1", State: "Not started", VmmVersion: "1.16.1", AppName: "Firecracker"}
	if info != want {
		t.Errorf("GET / = %+v, want %+v", info, want)
	}
}

func TestSuccessPath(t *testing.T) {
	p := startReady(t)
	a := p.conn()

	var info instanceInfo
	a.getJSON("/", &info)
	if want := (instanceInfo{ID: "anonymous-instance", State: "Not started", VmmVersion: "1.16.1", AppName: "Firecracker"}); info != want {
		t.Fatalf("GET / = %+v, want %+v", info, want)
	}
	var ver firecrackerVersion
	a.getJSON("/version", &ver)
	if ver.FirecrackerVersion != "1.16.1" {
		t.Errorf("GET /version = %+v", ver)
	}
	var mc map[string]any
	a.getJSON("/machine-config", &mc)
	if mc["vcpu_count"] != 1.0 || mc["mem_size_mib"] != 128.0 || mc["smt"] != false {
		t.Errorf("default machine config %v", mc)
	}

	logPath, metricsPath := touch(t, p.dir, "fc.log"), touch(t, p.dir, "fc.metrics")
	a.ok("PUT", "/logger", `{"log_path":`+q(logPath)+`,"level":"info","show_level":true}`)
	a.ok("PUT", "/metrics", `{"metrics_path":`+q(metricsPath)+`}`)
	configure(t, p, a)
	a.ok("PATCH", "/machine-config", `{"mem_size_mib":512}`)
	data := touch(t, p.dir, "data.img")
	a.ok("PUT", "/drives/data", `{"drive_id":"data","path_on_host":`+q(data)+`,"is_root_device":false,"is_read_only":true,"cache_type":"Writeback","io_engine":"Sync","rate_limiter":{"bandwidth":{"size":1000,"refill_time":100}}}`)
	a.ok("PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"lo","guest_mac":"06:00:ac:10:00:02"}`)
	a.ok("PUT", "/actions", `{"action_type":"FlushMetrics"}`)

	var cfg struct {
		MachineConfig machineConfig      `json:"machine-config"`
		BootSource    bootSource         `json:"boot-source"`
		Drives        []drive            `json:"drives"`
		Ifaces        []networkInterface `json:"network-interfaces"`
		Vsock         vsockConfig        `json:"vsock"`
	}
	a.getJSON("/vm/config", &cfg)
	if *cfg.MachineConfig.MemSizeMib != 512 || *cfg.MachineConfig.VcpuCount != 2 || len(cfg.Drives) != 2 ||
		*cfg.Drives[0].DriveID != "rootfs" || *cfg.Drives[1].CacheType != "Writeback" || len(cfg.Ifaces) != 1 || *cfg.Vsock.GuestCID != 3 {
		t.Errorf("GET /vm/config: %+v", cfg)
	}

	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	if s := a.state(); s != "Running" {
		t.Errorf("state %q after InstanceStart", s)
	}
	a.ok("PATCH", "/vm", `{"state":"Paused"}`)
	if s := a.state(); s != "Paused" {
		t.Errorf("state %q after pause", s)
	}
	a.ok("PATCH", "/vm", `{"state":"Resumed"}`)
	if s := a.state(); s != "Running" {
		t.Errorf("state %q after resume", s)
	}
	a.ok("PATCH", "/drives/data", `{"drive_id":"data","path_on_host":`+q(data)+`}`)
	a.ok("PATCH", "/network-interfaces/eth0", `{"iface_id":"eth0","rx_rate_limiter":{"ops":{"size":10,"refill_time":1000}}}`)
	a.ok("PUT", "/actions", `{"action_type":"FlushMetrics"}`)

	// The console crosses a pipe: wait for it rather than read it at once.
	if !p.stdout.waitUntil(func(out string) bool {
		return strings.Contains(out, "Linux version") && strings.Contains(out, "fake guest: booted")
	}, p.done, 10*time.Second) {
		t.Errorf("serial console: %q", p.stdout.String())
	}
	if b, _ := os.ReadFile(metricsPath); !strings.Contains(string(b), "utc_timestamp_ms") {
		t.Errorf("metrics file: %q", b)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), ":INFO]") {
		t.Errorf("log file: %q", b)
	}
}

func TestFaults(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	kernel, rootfs := touch(t, p.dir, "vmlinux"), touch(t, p.dir, "rootfs.ext4")
	taken := touch(t, p.dir, "taken.sock")
	for _, tc := range []struct {
		name, method, path, body, want string
	}{
		{"unknown path", "GET", "/nope", "", "Invalid request method and/or path: GET /nope"},
		{"wrong method", "GET", "/boot-source", "", "Invalid request method and/or path"},
		{"post is not a method", "POST", "/actions", `{"action_type":"InstanceStart"}`, "Invalid request method and/or path"},
		{"unimplemented endpoint", "PUT", "/balloon", `{"amount_mib":1,"deflate_on_oom":true}`, "not implemented by this fake"},
		{"empty body", "PUT", "/machine-config", "", "Empty PUT request"},
		{"unknown field", "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128,"foo":1}`, "unknown field"},
		{"unknown nested field", "PUT", "/drives/d", `{"drive_id":"d","is_root_device":false,"is_read_only":true,"path_on_host":` + q(rootfs) + `,"rate_limiter":{"bw":{}}}`, "unknown field"},
		{"missing field", "PUT", "/machine-config", `{"vcpu_count":1}`, "missing field `mem_size_mib`"},
		{"bad type", "PUT", "/machine-config", `{"vcpu_count":"1","mem_size_mib":128}`, "deserializing"},
		{"negative", "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":-1}`, "deserializing"},
		{"not json", "PUT", "/machine-config", `vcpu_count=1`, "deserializing"},
		{"trailing data", "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128} {}`, "trailing"},
		{"empty patch", "PATCH", "/machine-config", `{}`, "Empty PATCH request"},
		{"too many vcpus", "PUT", "/machine-config", `{"vcpu_count":33,"mem_size_mib":128}`, "vCPU number is invalid"},
		{"zero vcpus", "PUT", "/machine-config", `{"vcpu_count":0,"mem_size_mib":128}`, "vCPU number is invalid"},
		{"odd vcpus with smt", "PATCH", "/machine-config", `{"vcpu_count":3,"smt":true}`, "vCPU number is invalid"},
		{"zero memory", "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":0}`, "memory size"},
		{"bad cpu template", "PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128,"cpu_template":"Z9"}`, "unknown variant"},
		{"missing kernel", "PUT", "/boot-source", `{"kernel_image_path":"/nonexistent/vmlinux"}`, "/nonexistent/vmlinux"},
		{"missing initrd", "PUT", "/boot-source", `{"kernel_image_path":` + q(kernel) + `,"initrd_path":"/nonexistent/initrd"}`, "/nonexistent/initrd"},
		{"drive id mismatch", "PUT", "/drives/a", `{"drive_id":"b","is_root_device":false,"is_read_only":true,"path_on_host":` + q(rootfs) + `}`, "does not match"},
		{"drive missing is_root_device", "PUT", "/drives/a", `{"drive_id":"a","is_read_only":true,"path_on_host":` + q(rootfs) + `}`, "missing field `is_root_device`"},
		{"drive missing file", "PUT", "/drives/a", `{"drive_id":"a","is_root_device":false,"is_read_only":true,"path_on_host":"/nonexistent/disk"}`, "/nonexistent/disk"},
		{"drive bad id", "PUT", "/drives/a-b", `{"drive_id":"a-b","is_root_device":false,"is_read_only":true,"path_on_host":` + q(rootfs) + `}`, "Invalid ID"},
		{"drive bad cache type", "PUT", "/drives/a", `{"drive_id":"a","is_root_device":false,"is_read_only":true,"path_on_host":` + q(rootfs) + `,"cache_type":"None"}`, "unknown variant"},
		{"token bucket without size", "PUT", "/drives/a", `{"drive_id":"a","is_root_device":false,"is_read_only":true,"path_on_host":` + q(rootfs) + `,"rate_limiter":{"ops":{"refill_time":1}}}`, "missing field `size`"},
		{"iface id mismatch", "PUT", "/network-interfaces/eth0", `{"iface_id":"eth1","host_dev_name":"lo"}`, "does not match"},
		{"tap missing", "PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"nosuchtap0"}`, "Open tap device failed"},
		{"bad mac", "PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"lo","guest_mac":"zz"}`, "MAC"},
		{"vsock cid too small", "PUT", "/vsock", `{"guest_cid":2,"uds_path":` + q(filepath.Join(p.dir, "v.sock")) + `}`, "CID"},
		{"vsock path exists", "PUT", "/vsock", `{"guest_cid":3,"uds_path":` + q(taken) + `}`, "address already in use"},
		{"vsock missing uds_path", "PUT", "/vsock", `{"guest_cid":3}`, "missing field `uds_path`"},
		{"bad action", "PUT", "/actions", `{"action_type":"Reboot"}`, "unknown variant"},
		{"start without kernel", "PUT", "/actions", `{"action_type":"InstanceStart"}`, "without kernel configuration"},
		{"pause before start", "PATCH", "/vm", `{"state":"Paused"}`, "not supported before starting"},
		{"ctrl-alt-del before start", "PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`, "not supported before starting"},
		{"patch drive before start", "PATCH", "/drives/rootfs", `{"drive_id":"rootfs"}`, "not supported before starting"},
		{"missing metrics file", "PUT", "/metrics", `{"metrics_path":"/nonexistent/metrics"}`, "/nonexistent/metrics"},
		{"missing log file", "PUT", "/logger", `{"log_path":"/nonexistent/log"}`, "/nonexistent/log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.fault(tc.method, tc.path, tc.body, tc.want)
		})
	}
	// The failures changed nothing, and the connection is still usable.
	if s := a.state(); s != "Not started" {
		t.Errorf("state %q", s)
	}
	if _, err := os.Stat(taken); err != nil {
		t.Errorf("the existing vsock path was removed: %v", err)
	}

	a.ok("PUT", "/drives/root1", `{"drive_id":"root1","path_on_host":`+q(rootfs)+`,"is_root_device":true,"is_read_only":false}`)
	a.fault("PUT", "/drives/root2", `{"drive_id":"root2","path_on_host":`+q(rootfs)+`,"is_root_device":true,"is_read_only":false}`, "root block device already exists")
	a.ok("PUT", "/drives/root1", `{"drive_id":"root1","path_on_host":`+q(rootfs)+`,"is_root_device":true,"is_read_only":true}`)
	a.ok("PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"lo"}`)
	a.fault("PUT", "/network-interfaces/eth1", `{"iface_id":"eth1","host_dev_name":"lo"}`, "already in use")
}

func TestPostBootRules(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	configure(t, p, a)
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	kernel := filepath.Join(p.dir, "vmlinux")
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`},
		{"PATCH", "/machine-config", `{"vcpu_count":1}`},
		{"PUT", "/boot-source", `{"kernel_image_path":` + q(kernel) + `}`},
		{"PUT", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":` + q(kernel) + `,"is_root_device":true,"is_read_only":true}`},
		{"PUT", "/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"lo"}`},
		{"PUT", "/vsock", `{"guest_cid":3,"uds_path":` + q(filepath.Join(p.dir, "v2.sock")) + `}`},
		{"PUT", "/logger", `{"level":"Debug"}`},
		{"PUT", "/metrics", `{"metrics_path":` + q(kernel) + `}`},
		{"PUT", "/actions", `{"action_type":"InstanceStart"}`},
	} {
		a.fault(tc.method, tc.path, tc.body, "not supported after starting")
	}
	a.fault("PATCH", "/drives/nope", `{"drive_id":"nope"}`, "Invalid block device ID")
	a.fault("PATCH", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":"/nonexistent/disk"}`, "/nonexistent/disk")
	a.fault("PATCH", "/vm", `{"state":"Stopped"}`, "unknown variant")
	if s := a.state(); s != "Running" {
		t.Errorf("state %q", s)
	}
}

func TestKeepAliveIgnoresConnectionClose(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	for i := 0; i < 50; i++ {
		status, _, err := a.try("GET", "/", "", "Connection: close")
		if err != nil || status != http.StatusOK {
			t.Fatalf("request %d: %d, %v", i, status, err)
		}
		a.ok("PATCH", "/machine-config", `{"vcpu_count":2}`)
	}
}

func TestInjectedFailure(t *testing.T) {
	p := startReady(t, "FAKEFC_FAIL=/drives/")
	a := p.conn()
	rootfs := touch(t, p.dir, "rootfs")
	a.fault("PUT", "/drives/rootfs", `{"drive_id":"rootfs","path_on_host":`+q(rootfs)+`,"is_root_device":true,"is_read_only":false}`, "injected failure")
	a.ok("PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":64}`)
}

func TestSocketExists(t *testing.T) {
	dir := testutil.ShortTempDir(t)
	sock := touch(t, dir, "api.sock")
	p := startFake(t, dir, nil)
	if code := p.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if e := p.stderr.String(); !strings.Contains(e, sock) || !strings.Contains(e, "address already in use") {
		t.Errorf("stderr %q should name %s and say the address is in use", e, sock)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the existing file was removed: %v", err)
	}
}

func TestSocketsRemainAfterExit(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	configure(t, p, a)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	for _, path := range []string{p.sock, filepath.Join(p.dir, "v.sock")} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s was removed: %v", path, err)
		}
	}
}

func TestSocketDelayAndNoSocket(t *testing.T) {
	began := time.Now()
	p := startFake(t, testutil.ShortTempDir(t), []string{"FAKEFC_SOCKET_DELAY=300ms"})
	p.waitSocket()
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("the socket accepted %v after the start, before FAKEFC_SOCKET_DELAY", took)
	}

	q := startFake(t, testutil.ShortTempDir(t), []string{"FAKEFC_NO_SOCKET=1"})
	q.waitReady()
	if q.hasExited() {
		t.Fatalf("FAKEFC_NO_SOCKET: exited: %v %s", q.err, q.stderr.String())
	}
	if _, err := os.Stat(q.sock); err == nil {
		t.Error("FAKEFC_NO_SOCKET: the socket was created")
	}
	_ = q.cmd.Process.Signal(syscall.SIGTERM)
	if code := q.wait(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
}

func TestCtrlAltDel(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	configure(t, p, a)
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	a.ok("PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`)
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestCtrlAltDelIgnored(t *testing.T) {
	p := startReady(t, "FAKEFC_IGNORE_CTRLALTDEL=1")
	a := p.conn()
	configure(t, p, a)
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	a.ok("PUT", "/actions", `{"action_type":"SendCtrlAltDel"}`)
	// Without the switch the fake schedules its exit instead of this line.
	waitStdout(t, p, "Ctrl-Alt-Del ignored")
	if strings.Contains(p.stdout.String(), "reboot: Restarting") {
		t.Fatal("rebooting despite FAKEFC_IGNORE_CTRLALTDEL")
	}
	if s := a.state(); s != "Running" {
		t.Errorf("state %q", s)
	}
}

func TestSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		p := startReady(t)
		_ = p.cmd.Process.Signal(sig)
		if code := p.wait(); code != 0 {
			t.Errorf("%v: exit code %d, want 0", sig, code)
		}
	}
	p := startReady(t, "FAKEFC_IGNORE_SIGTERM=1")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		_ = p.cmd.Process.Signal(sig)
		// Without the switch the handler exits instead of saying this.
		if !p.stderr.waitFor(sig.String()+" ignored", p.done, 10*time.Second) {
			t.Fatalf("%v not reported ignored: exited %v, stderr %q", sig, p.hasExited(), p.stderr.String())
		}
	}
	p.conn().state() // still serving
	_ = p.cmd.Process.Kill()
	p.wait()
}

func TestCrashAtStart(t *testing.T) {
	p := startReady(t, "FAKEFC_CRASH_AT_START=1")
	a := p.conn()
	configure(t, p, a)
	if _, _, err := a.try("PUT", "/actions", `{"action_type":"InstanceStart"}`); err == nil {
		t.Error("InstanceStart was answered")
	}
	if code := p.wait(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if e := p.stderr.String(); !strings.Contains(e, "fake: crash at InstanceStart") || !strings.Contains(e, "panicked") {
		t.Errorf("stderr %q", e)
	}
}

func TestStartDelay(t *testing.T) {
	p := startReady(t, "FAKEFC_START_DELAY=200ms")
	a := p.conn()
	configure(t, p, a)
	start := time.Now()
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("InstanceStart took %v, want at least 200ms", d)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConfigFile(t *testing.T) {
	dir := testutil.ShortTempDir(t)
	cfgPath := filepath.Join(dir, "vm.json")
	writeJSON(t, cfgPath, map[string]any{
		"boot-source":    map[string]any{"kernel_image_path": touch(t, dir, "vmlinux"), "boot_args": "console=ttyS0"},
		"drives":         []any{map[string]any{"drive_id": "rootfs", "path_on_host": touch(t, dir, "rootfs"), "is_root_device": true, "is_read_only": false}},
		"machine-config": map[string]any{"vcpu_count": 1, "mem_size_mib": 128},
		"vsock":          map[string]any{"guest_cid": 3, "uds_path": filepath.Join(dir, "v.sock")},
	})
	p := startFake(t, dir, nil, "--config-file", cfgPath)
	p.waitSocket()
	a := p.conn()
	if s := a.state(); s != "Running" {
		t.Errorf("state %q", s)
	}
	a.ok("PATCH", "/vm", `{"state":"Paused"}`)
	a.fault("PUT", "/machine-config", `{"vcpu_count":1,"mem_size_mib":128}`, "not supported after starting")
	waitStdout(t, p, "fake guest: booted")

	noAPICfg := filepath.Join(dir, "noapi.json")
	writeJSON(t, noAPICfg, map[string]any{"boot-source": map[string]any{"kernel_image_path": filepath.Join(dir, "vmlinux")}})
	noAPI := startFake(t, testutil.ShortTempDir(t), nil, "--no-api", "--config-file", noAPICfg)
	noAPI.waitReady()
	if noAPI.hasExited() {
		t.Fatalf("--no-api exited: %v %s", noAPI.err, noAPI.stderr.String())
	}
	if _, err := os.Stat(noAPI.sock); err == nil {
		t.Error("--no-api created the API socket")
	}

	bad := filepath.Join(dir, "bad.json")
	writeJSON(t, bad, map[string]any{"boot-source": map[string]any{"kernel_image_path": "/nonexistent/vmlinux"}})
	b := startFake(t, testutil.ShortTempDir(t), nil, "--config-file", bad)
	if code := b.wait(); code != 1 || !strings.Contains(b.stderr.String(), "/nonexistent/vmlinux") {
		t.Errorf("bad config: exit %d, stderr %q", code, b.stderr.String())
	}
	writeJSON(t, bad, map[string]any{"boot-source": map[string]any{"kernel_image_path": touch(t, dir, "k2")}, "bogus": 1})
	b = startFake(t, testutil.ShortTempDir(t), nil, "--config-file", bad)
	if code := b.wait(); code != 1 || !strings.Contains(b.stderr.String(), "unknown field") {
		t.Errorf("unknown field in config: exit %d, stderr %q", code, b.stderr.String())
	}
}

// guestListener listens on dir/<port> and serves each connection with fn.
func guestListener(t *testing.T, dir string, port uint32, fn func(c *net.UnixConn)) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, strconv.Itoa(int(port))), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); fn(c) }()
		}
	}()
}

// echoUntilEOF echoes everything, then writes "bye" and closes.
func echoUntilEOF(c *net.UnixConn) {
	_, _ = io.Copy(c, c)
	_, _ = io.WriteString(c, "bye")
}

// bootWithVsock boots a VM whose vsock is <dir>/v.sock.
func bootWithVsock(t *testing.T, env ...string) (*fakeProc, *apiConn) {
	t.Helper()
	p := startReady(t, env...)
	a := p.conn()
	configure(t, p, a)
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	return p, a
}

func dialVsock(t *testing.T, p *fakeProc) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: filepath.Join(p.dir, "v.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func TestVsockBridge(t *testing.T) {
	p, _ := bootWithVsock(t)
	guestDir := filepath.Join(p.dir, "fake-guest")
	if fi, err := os.Stat(guestDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("guest dir: %v %v", fi, err)
	}
	guestListener(t, guestDir, 1024, echoUntilEOF)

	var ports []uint64
	for i := 0; i < 3; i++ {
		c := dialVsock(t, p)
		// CONNECT and the first payload bytes in one write: the fake must
		// forward what follows the line.
		if _, err := io.WriteString(c, "CONNECT 1024\nping"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(line, "OK "), "\n"), 10, 32)
		if err != nil || !strings.HasPrefix(line, "OK ") || port == 1024 || port < 1<<30 {
			t.Fatalf("answer %q", line)
		}
		ports = append(ports, port)
		if _, err := io.WriteString(c, "-pong"); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "ping-pongbye" {
			t.Fatalf("echo %q, %v", rest, err)
		}
	}
	if ports[0] == ports[1] || ports[1] == ports[2] {
		t.Errorf("host ports repeat: %v", ports)
	}
}

func TestVsockGreetingInSameWrite(t *testing.T) {
	p, _ := bootWithVsock(t, "FAKEFC_VSOCK_GREETING=hello")
	guestListener(t, filepath.Join(p.dir, "fake-guest"), 52, echoUntilEOF)
	c := dialVsock(t, p)
	if _, err := io.WriteString(c, "CONNECT 52\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); !strings.HasPrefix(got, "OK ") || !strings.HasSuffix(got, "\nhello") {
		t.Fatalf("first read %q, want the OK line and the greeting together", got)
	}
}

func TestVsockRefused(t *testing.T) {
	p, _ := bootWithVsock(t)
	for _, first := range []string{"CONNECT 1025\n", "HELLO\n", "CONNECT x\n", "CONNECT 99999999999\n"} {
		c := dialVsock(t, p)
		if _, err := io.WriteString(c, first); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		if err != nil || len(b) != 0 {
			t.Errorf("%q: got %q, %v; want the connection closed without an answer", first, b, err)
		}
	}
}

func TestVsockWaitsForBootAndResume(t *testing.T) {
	p := startReady(t)
	a := p.conn()
	configure(t, p, a)
	// The fake's debug log, on a named pipe, says when a connection is
	// parked until the guest runs: then it surely has not answered.
	fifo := filepath.Join(p.dir, "fc.fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	logR, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0) // no writer yet
	if err != nil {
		t.Fatal(err)
	}
	defer logR.Close()
	a.ok("PUT", "/logger", `{"log_path":`+q(fifo)+`,"level":"Debug"}`)
	guestListener(t, filepath.Join(p.dir, "fake-guest"), 7, echoUntilEOF)
	c := dialVsock(t, p)
	if _, err := io.WriteString(c, "CONNECT 7\n"); err != nil {
		t.Fatal(err)
	}
	_ = logR.SetReadDeadline(time.Now().Add(10 * time.Second))
	log := bufio.NewReader(logR)
	for {
		line, err := log.ReadString('\n')
		if err != nil {
			t.Fatalf("the log does not say the connection waits: %v", err)
		}
		if strings.Contains(line, "waits for the guest to run") {
			break
		}
	}
	if n := unread(t, c); n != 0 {
		t.Fatalf("answered (%d bytes) before InstanceStart", n)
	}
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("after start: %q, %v", line, err)
	}
}

// unread returns how many bytes c has received that nobody has read, now.
func unread(t *testing.T, c *net.UnixConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatalf("FIONREAD: %v", ierr)
	}
	return n
}

func TestVsockExplicitGuestDir(t *testing.T) {
	guestDir := filepath.Join(testutil.ShortTempDir(t), "g")
	p, _ := bootWithVsock(t, "FAKEFC_GUEST_DIR="+guestDir)
	guestListener(t, guestDir, 1024, echoUntilEOF)
	c := dialVsock(t, p)
	if _, err := io.WriteString(c, "CONNECT 1024\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("%q, %v", line, err)
	}
}

// waitStdout waits until the fake's stdout, which crosses a pipe and a copying
// goroutine, holds want.
func waitStdout(t *testing.T, p *fakeProc, want string) {
	t.Helper()
	if !p.stdout.waitFor(want, p.done, 10*time.Second) {
		t.Errorf("stdout lacks %q: %q", want, p.stdout.String())
	}
}

// guestPID reads the pid the guest printed as "guest-pid=<pid>" and opens
// a pidfd on it (the guest is the fake's child, not the test's: only a
// pidfd tells when it is gone without polling).
func guestPID(t *testing.T, p *fakeProc) (int, int) {
	t.Helper()
	const key = "guest-pid="
	line := func(out string) (string, bool) {
		i := strings.Index(out, key)
		if i < 0 {
			return "", false
		}
		l, _, ok := strings.Cut(out[i+len(key):], "\n")
		return l, ok
	}
	if !p.stdout.waitUntil(func(out string) bool { _, ok := line(out); return ok }, p.done, 10*time.Second) {
		t.Fatalf("the guest did not print its pid: %q", p.stdout.String())
	}
	l, _ := line(p.stdout.String())
	pid, err := strconv.Atoi(l)
	if err != nil {
		t.Fatalf("guest pid %q: %v", l, err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	t.Cleanup(func() {
		// Ends a guest that a failing test left; a no-op once it has
		// exited (a pidfd never reaches a recycled pid).
		_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		unix.Close(fd)
	})
	return pid, fd
}

// waitGone waits until the process behind pidfd has exited; it reports
// false after timeout.
func waitGone(pidfd int, timeout time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 1
	}
}

func TestGuestCommand(t *testing.T) {
	p, _ := bootWithVsock(t, "FAKEFC_GUEST_CMD=echo guest-up dir=$FAKEFC_GUEST_DIR; echo guest-pid=$$; exec sleep 1000")
	_, pidfd := guestPID(t, p)
	waitStdout(t, p, "guest-up dir="+filepath.Join(p.dir, "fake-guest"))
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !waitGone(pidfd, 5*time.Second) {
		t.Fatal("the guest survived the fake")
	}
	if _, err := os.Stat(filepath.Join(p.dir, "fake-guest")); !os.IsNotExist(err) {
		t.Errorf("the guest dir was not removed: %v", err)
	}
}

func TestGuestExitEndsVM(t *testing.T) {
	p, _ := bootWithVsock(t, "FAKEFC_GUEST_CMD=sleep 0.05")
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if !strings.Contains(p.stdout.String(), "reboot") {
		t.Errorf("stdout %q", p.stdout.String())
	}
}

func TestNoLeakedChildren(t *testing.T) {
	p := startReady(t)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	p.wait()
	testutil.CheckNoChildren(t)
}

// TestGuestDiesWithKilledFake: a fake that is SIGKILLed (or crashes) cannot
// kill its guest on the way out; the guest, such as a host-run petty-agent,
// must die with it all the same (Pdeathsig), whether InstanceStart came
// through the API or from --config-file (different goroutines, and threads,
// start the guest).
func TestGuestDiesWithKilledFake(t *testing.T) {
	guest := "FAKEFC_GUEST_CMD=echo guest-pid=$$; exec sleep 1000"
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) *fakeProc
	}{
		{"api", func(t *testing.T) *fakeProc {
			p, _ := bootWithVsock(t, guest)
			return p
		}},
		{"config file", func(t *testing.T) *fakeProc {
			dir := testutil.ShortTempDir(t)
			cfg := filepath.Join(dir, "vm.json")
			writeJSON(t, cfg, map[string]any{"boot-source": map[string]any{"kernel_image_path": touch(t, dir, "vmlinux")}})
			p := startFake(t, dir, []string{guest}, "--config-file", cfg)
			p.waitSocket()
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.start(t)
			pid, pidfd := guestPID(t, p)
			if holdsFile(t, pid, p.ready) {
				t.Error("the guest inherited the FAKEFC_READY_FD pipe")
			}
			// Keep the fake busy on other threads meanwhile, so that the
			// guest's parent thread is not simply the only one.
			for range 20 {
				p.conn().state()
			}
			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			p.wait()
			if !waitGone(pidfd, 5*time.Second) {
				t.Fatal("the guest survived its SIGKILLed fake")
			}
		})
	}
}

// holdsFile reports whether process pid has a descriptor open on the same
// file (pipe) as f.
func holdsFile(t *testing.T, pid int, f *os.File) bool {
	t.Helper()
	want, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && os.SameFile(fi, want) {
			return true
		}
	}
	return false
}

func TestVsockSilent(t *testing.T) {
	p, _ := bootWithVsock(t, "FAKEFC_VSOCK_SILENT=1")
	c := dialVsock(t, p)
	if _, err := io.WriteString(c, "CONNECT 1024\nping"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("answer %q, %v", line, err)
	}
	if _, err := io.WriteString(c, "more"); err != nil {
		t.Fatal(err)
	}
	// The fake swallows what comes until the host closes its side; it
	// never answers a byte.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after OK: %q, %v; want nothing, then EOF", rest, err)
	}
}

func TestInjectedFailureInConfigFile(t *testing.T) {
	for _, tc := range []struct {
		fail string
		ok   bool
	}{
		{"/machine-config", false},
		{"/boot-source", false},
		{"/drives/rootfs", false},
		{"/vsock", false},
		{"/actions", false},
		{"/network-interfaces/", true}, // the file has none
		{"/balloon", true},
	} {
		t.Run(tc.fail, func(t *testing.T) {
			dir := testutil.ShortTempDir(t)
			cfg := filepath.Join(dir, "vm.json")
			writeJSON(t, cfg, map[string]any{
				"boot-source":    map[string]any{"kernel_image_path": touch(t, dir, "vmlinux")},
				"drives":         []any{map[string]any{"drive_id": "rootfs", "path_on_host": touch(t, dir, "rootfs"), "is_root_device": true, "is_read_only": false}},
				"machine-config": map[string]any{"vcpu_count": 1, "mem_size_mib": 128},
				"vsock":          map[string]any{"guest_cid": 3, "uds_path": filepath.Join(dir, "v.sock")},
			})
			p := startFake(t, dir, []string{"FAKEFC_FAIL=" + tc.fail}, "--config-file", cfg)
			if tc.ok {
				p.waitSocket()
				if s := p.conn().state(); s != "Running" {
					t.Errorf("state %q", s)
				}
				return
			}
			if code := p.wait(); code != 1 || !strings.Contains(p.stderr.String(), "injected failure") {
				t.Errorf("exit %d, stderr %q; want 1 and the injected failure", code, p.stderr.String())
			}
		})
	}
}

func TestBadReadyFD(t *testing.T) {
	cmd := exec.Command(testutil.FakeFirecracker(t), "--api-sock", filepath.Join(testutil.ShortTempDir(t), "api.sock"))
	cmd.Env = append(os.Environ(), "FAKEFC_READY_FD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "FAKEFC_READY_FD") {
		t.Errorf("FAKEFC_READY_FD=1: %v, %q; want exit 1 naming the switch", err, out)
	}
}

// BenchmarkStartToReady measures a fake's start until GET / answers, then
// SIGTERM until exit.
func BenchmarkStartToReady(b *testing.B) {
	bin := testutil.FakeFirecracker(b)
	dir := testutil.ShortTempDir(b)
	for i := 0; b.Loop(); i++ {
		sock := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "--api-sock", sock)
		cmd.Env = append(os.Environ(), "FAKEFC_READY_FD=3")
		cmd.ExtraFiles = []*os.File{w}
		err = cmd.Start()
		w.Close()
		if err != nil {
			b.Fatal(err)
		}
		if line, err := bufio.NewReader(r).ReadString('\n'); line != "ready\n" {
			b.Fatalf("ready: %q, %v", line, err)
		}
		r.Close()
		c, err := net.Dial("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatal(resp, err)
		}
		c.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}
