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

	"github.com/pettyvm/petty/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.Cleanup()
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for the exec copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeProc is one running fake firecracker.
type fakeProc struct {
	t      *testing.T
	dir    string
	sock   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's result, valid after done
}

// startFake starts the fake with --api-sock <dir>/api.sock plus args, env
// added to the environment. It does not wait for the socket.
func startFake(t *testing.T, dir string, env []string, args ...string) *fakeProc {
	t.Helper()
	bin := testutil.FakeFirecracker(t)
	p := &fakeProc{t: t, dir: dir, sock: filepath.Join(dir, "api.sock"), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--api-sock", p.sock}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
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

func (p *fakeProc) waitSocket() {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// The file exists from bind(2) on; it accepts only after listen(2).
		if c, err := net.Dial("unix", p.sock); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("fake exited before creating its socket: %v\nstderr: %s", p.err, p.stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	p.t.Fatal("the API socket did not appear")
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

func (p *fakeProc) exited(within time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(within):
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

	if out := p.stdout.String(); !strings.Contains(out, "Linux version") || !strings.Contains(out, "fake guest: booted") {
		t.Errorf("serial console: %q", out)
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
	p := startFake(t, testutil.ShortTempDir(t), []string{"FAKEFC_SOCKET_DELAY=300ms"})
	time.Sleep(100 * time.Millisecond)
	if _, err := os.Stat(p.sock); err == nil {
		t.Error("the socket appeared before FAKEFC_SOCKET_DELAY")
	}
	p.waitSocket()

	q := startFake(t, testutil.ShortTempDir(t), []string{"FAKEFC_NO_SOCKET=1"})
	if q.exited(300 * time.Millisecond) {
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
	if p.exited(200 * time.Millisecond) {
		t.Fatal("exited despite FAKEFC_IGNORE_CTRLALTDEL")
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
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	if p.exited(200 * time.Millisecond) {
		t.Fatal("exited despite FAKEFC_IGNORE_SIGTERM")
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
	if noAPI.exited(200 * time.Millisecond) {
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
	guestListener(t, filepath.Join(p.dir, "fake-guest"), 7, echoUntilEOF)
	c := dialVsock(t, p)
	if _, err := io.WriteString(c, "CONNECT 7\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := c.Read(make([]byte, 16)); n != 0 {
		t.Fatal("answered before InstanceStart")
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	a.ok("PUT", "/actions", `{"action_type":"InstanceStart"}`)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "OK ") {
		t.Fatalf("after start: %q, %v", line, err)
	}
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
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(p.stdout.String(), want) {
			return
		}
	}
	t.Errorf("stdout lacks %q: %q", want, p.stdout.String())
}

func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("%s did not appear", path)
	return ""
}

func TestGuestCommand(t *testing.T) {
	pidFile := filepath.Join(testutil.ShortTempDir(t), "guest.pid")
	p, _ := bootWithVsock(t, "FAKEFC_GUEST_CMD=echo guest-up dir=$FAKEFC_GUEST_DIR; echo $$ > "+pidFile+"; exec sleep 1000")
	pid, err := strconv.Atoi(waitFile(t, pidFile))
	if err != nil {
		t.Fatal(err)
	}
	if !testutil.Alive(pid) {
		t.Fatal("the guest is not running")
	}
	// The pid file can appear before the guest's echo has crossed the
	// fake's stdout pipe into p.stdout.
	waitStdout(t, p, "guest-up dir="+filepath.Join(p.dir, "fake-guest"))
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	for deadline := time.Now().Add(5 * time.Second); testutil.Alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("the guest survived the fake")
		}
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

// BenchmarkStartToReady measures a fake's start until GET / answers, then
// SIGTERM until exit.
func BenchmarkStartToReady(b *testing.B) {
	bin := testutil.FakeFirecracker(b)
	dir := testutil.ShortTempDir(b)
	for i := 0; b.Loop(); i++ {
		sock := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		cmd := exec.Command(bin, "--api-sock", sock)
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var c net.Conn
		for {
			var err error
			if c, err = net.Dial("unix", sock); err == nil {
				break
			}
			time.Sleep(100 * time.Microsecond)
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
