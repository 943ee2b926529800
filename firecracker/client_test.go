package firecracker_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/pettyvm/petty/firecracker"
)

func ptr[T any](v T) *T { return &v }

// newClient returns a client for f, closed when the test ends.
func newClient(t *testing.T, f *fakeAPI) *firecracker.Client {
	t.Helper()
	c := firecracker.NewClient(f.SocketPath)
	t.Cleanup(func() { c.Close() })
	return c
}

func put(uri, body string) request {
	return request{Method: http.MethodPut, RequestURI: uri, ContentLength: strconv.Itoa(len(body)), ContentType: "application/json", Body: body}
}

func patch(uri, body string) request {
	r := put(uri, body)
	r.Method = http.MethodPatch
	return r
}

func get(uri string) request {
	return request{Method: http.MethodGet, RequestURI: uri}
}

func TestRequestFraming(t *testing.T) {
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Write([]byte(`{}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := newClient(t, f)
	tests := []struct {
		name string
		call func(context.Context, *firecracker.Client) error
		want request
	}{
		{
			name: "PutMachineConfig minimal",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutMachineConfig(ctx, firecracker.MachineConfiguration{VcpuCount: 2, MemSizeMib: 256})
			},
			want: put("/machine-config", `{"vcpu_count":2,"mem_size_mib":256}`),
		},
		{
			name: "PutMachineConfig full",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutMachineConfig(ctx, firecracker.MachineConfiguration{
					VcpuCount: 1, MemSizeMib: 128, Smt: ptr(false), TrackDirtyPages: ptr(true),
					HugePages: firecracker.HugePages2M, CPUTemplate: "T2",
				})
			},
			want: put("/machine-config", `{"vcpu_count":1,"mem_size_mib":128,"smt":false,"track_dirty_pages":true,"huge_pages":"2M","cpu_template":"T2"}`),
		},
		{
			name: "PutBootSource",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutBootSource(ctx, firecracker.BootSource{KernelImagePath: "/k/vmlinux", BootArgs: "console=ttyS0 quiet"})
			},
			want: put("/boot-source", `{"kernel_image_path":"/k/vmlinux","boot_args":"console=ttyS0 quiet"}`),
		},
		{
			name: "PutBootSource with initrd",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutBootSource(ctx, firecracker.BootSource{KernelImagePath: "/k", InitrdPath: "/i.cpio"})
			},
			want: put("/boot-source", `{"kernel_image_path":"/k","initrd_path":"/i.cpio"}`),
		},
		{
			name: "PutDrive root",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutDrive(ctx, firecracker.Drive{DriveID: "rootfs", PathOnHost: "/img/root.ext4", IsRootDevice: true, IsReadOnly: ptr(false)})
			},
			want: put("/drives/rootfs", `{"drive_id":"rootfs","path_on_host":"/img/root.ext4","is_root_device":true,"is_read_only":false}`),
		},
		{
			name: "PutDrive escaped id and all fields",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutDrive(ctx, firecracker.Drive{
					DriveID: "data 1/x?y", PathOnHost: "/d", IsReadOnly: ptr(true),
					CacheType: firecracker.CacheTypeWriteback, IoEngine: firecracker.IoEngineAsync, Partuuid: "abc",
					RateLimiter: &firecracker.RateLimiter{Ops: &firecracker.TokenBucket{Size: 10, RefillTime: 100, OneTimeBurst: ptr[int64](0)}},
				})
			},
			want: put("/drives/data%201%2Fx%3Fy", `{"drive_id":"data 1/x?y","path_on_host":"/d","is_root_device":false,"is_read_only":true,"cache_type":"Writeback","io_engine":"Async","partuuid":"abc","rate_limiter":{"ops":{"one_time_burst":0,"refill_time":100,"size":10}}}`),
		},
		{
			name: "PatchDrive",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PatchDrive(ctx, firecracker.PartialDrive{DriveID: "scratch", PathOnHost: "/new"})
			},
			want: patch("/drives/scratch", `{"drive_id":"scratch","path_on_host":"/new"}`),
		},
		{
			name: "PutNetworkInterface",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutNetworkInterface(ctx, firecracker.NetworkInterface{IfaceID: "eth0", HostDevName: "tap0", GuestMac: "06:00:ac:10:00:02"})
			},
			want: put("/network-interfaces/eth0", `{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"06:00:ac:10:00:02"}`),
		},
		{
			name: "PutVsock",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutVsock(ctx, firecracker.Vsock{GuestCID: 3, UdsPath: "/run/v.sock"})
			},
			want: put("/vsock", `{"guest_cid":3,"uds_path":"/run/v.sock"}`),
		},
		{
			name: "PutLogger",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PutLogger(ctx, firecracker.Logger{LogPath: "/log", Level: firecracker.LogLevelDebug, ShowLevel: true})
			},
			want: put("/logger", `{"log_path":"/log","level":"Debug","show_level":true}`),
		},
		{
			name: "StartInstance",
			call: func(ctx context.Context, c *firecracker.Client) error { return c.StartInstance(ctx) },
			want: put("/actions", `{"action_type":"InstanceStart"}`),
		},
		{
			name: "SendCtrlAltDel",
			call: func(ctx context.Context, c *firecracker.Client) error { return c.SendCtrlAltDel(ctx) },
			want: put("/actions", `{"action_type":"SendCtrlAltDel"}`),
		},
		{
			name: "PatchVM paused",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PatchVM(ctx, firecracker.VMStatePaused)
			},
			want: patch("/vm", `{"state":"Paused"}`),
		},
		{
			name: "PatchVM resumed",
			call: func(ctx context.Context, c *firecracker.Client) error {
				return c.PatchVM(ctx, firecracker.VMStateResumed)
			},
			want: patch("/vm", `{"state":"Resumed"}`),
		},
		{
			name: "GetMachineConfig",
			call: func(ctx context.Context, c *firecracker.Client) error { _, err := c.GetMachineConfig(ctx); return err },
			want: get("/machine-config"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if diff := cmp.Diff([]request{tt.want}, f.Requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// jsonAnswer answers 200 with body for GET path.
func jsonAnswer(routes map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			http.Error(w, `{"fault_message":"no route"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

func TestGetters(t *testing.T) {
	f := newFakeAPI(t, jsonAnswer(map[string]string{
		"GET /machine-config": `{"vcpu_count":2,"mem_size_mib":1024,"smt":false,"track_dirty_pages":false,"huge_pages":"None"}`,
		"GET /":               `{"id":"vm-1","state":"Not started","vmm_version":"1.16.1","app_name":"Firecracker"}`,
		"GET /version":        `{"firecracker_version":"1.16.1"}`,
	}))
	c := newClient(t, f)
	ctx := t.Context()

	mc, err := c.GetMachineConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantMC := firecracker.MachineConfiguration{VcpuCount: 2, MemSizeMib: 1024, Smt: ptr(false), TrackDirtyPages: ptr(false), HugePages: firecracker.HugePagesNone}
	if diff := cmp.Diff(wantMC, mc); diff != "" {
		t.Errorf("GetMachineConfig (-want +got):\n%s", diff)
	}

	info, err := c.DescribeInstance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := firecracker.InstanceInfo{AppName: "Firecracker", ID: "vm-1", State: firecracker.InstanceStateNotStarted, VmmVersion: "1.16.1"}
	if diff := cmp.Diff(wantInfo, info); diff != "" {
		t.Errorf("DescribeInstance (-want +got):\n%s", diff)
	}

	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != "1.16.1" {
		t.Errorf("Version = %q, want 1.16.1", v)
	}

	want := []request{get("/machine-config"), get("/"), get("/version")}
	if diff := cmp.Diff(want, f.Requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    *firecracker.APIError
		wantMsg string
	}{
		{
			name:    "fault message",
			status:  http.StatusBadRequest,
			body:    `{"fault_message":"The kernel file cannot be opened: No such file or directory (os error 2)"}`,
			want:    &firecracker.APIError{Op: "PUT /drives/rootfs", StatusCode: 400, FaultMessage: "The kernel file cannot be opened: No such file or directory (os error 2)"},
			wantMsg: "firecracker: PUT /drives/rootfs: 400 Bad Request: The kernel file cannot be opened: No such file or directory (os error 2)",
		},
		{
			name:    "non-JSON body",
			status:  http.StatusInternalServerError,
			body:    "something broke\n",
			want:    &firecracker.APIError{Op: "PUT /drives/rootfs", StatusCode: 500, FaultMessage: "something broke"},
			wantMsg: "firecracker: PUT /drives/rootfs: 500 Internal Server Error: something broke",
		},
		{
			name:    "JSON without fault_message",
			status:  http.StatusBadRequest,
			body:    `{"error":"x"}`,
			want:    &firecracker.APIError{Op: "PUT /drives/rootfs", StatusCode: 400, FaultMessage: `{"error":"x"}`},
			wantMsg: `firecracker: PUT /drives/rootfs: 400 Bad Request: {"error":"x"}`,
		},
		{
			name:    "empty body",
			status:  http.StatusNotFound,
			want:    &firecracker.APIError{Op: "PUT /drives/rootfs", StatusCode: 404},
			wantMsg: "firecracker: PUT /drives/rootfs: 404 Not Found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			c := newClient(t, f)
			err := c.PutDrive(t.Context(), firecracker.Drive{DriveID: "rootfs", PathOnHost: "/r", IsRootDevice: true})
			apiErr, ok := errors.AsType[*firecracker.APIError](err)
			if !ok {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if diff := cmp.Diff(tt.want, apiErr); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			if got := err.Error(); got != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", got, tt.wantMsg)
			}
		})
	}
}

func TestConnectionReuse(t *testing.T) {
	n := 0
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		n++ // requests are serialized by the client below
		switch {
		case r.Method == http.MethodGet:
			w.Write([]byte(`{"firecracker_version":"1.16.1"}`))
		case n%3 == 0:
			http.Error(w, `{"fault_message":"bad"}`, http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	c := newClient(t, f)
	for i := range 60 {
		var err error
		if i%2 == 0 {
			_, err = c.Version(t.Context())
		} else {
			err = c.StartInstance(t.Context())
		}
		if _, ok := errors.AsType[*firecracker.APIError](err); err != nil && !ok {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := f.newConns.Load(); got != 1 {
		t.Errorf("server saw %d connections for 60 calls, want 1", got)
	}
}

// hang answers only when the client gives up.
func hang(w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func(t *testing.T) context.Context
	}{
		{
			name:    "client timeout",
			timeout: 50 * time.Millisecond,
			ctx:     func(t *testing.T) context.Context { return t.Context() },
		},
		{
			name:    "earlier ctx deadline wins",
			timeout: time.Hour,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t, hang)
			c := newClient(t, f)
			c.Timeout = tt.timeout
			err := c.StartInstance(tt.ctx(t))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("StartInstance = %v, want context.DeadlineExceeded", err)
			}
			if _, ok := errors.AsType[*firecracker.APIError](err); ok {
				t.Errorf("timeout reported as *APIError: %v", err)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	arrived := make(chan struct{})
	f := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		hang(w, r)
	})
	c := newClient(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	err := c.PutVsock(ctx, firecracker.Vsock{GuestCID: 3, UdsPath: "/v"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("PutVsock = %v, want context.Canceled", err)
	}
}

func TestSocketMissing(t *testing.T) {
	c := firecracker.NewClient(socketPath(t, "missing.sock"))
	defer c.Close()
	_, err := c.Version(t.Context())
	opErr, ok := errors.AsType[*net.OpError](err)
	if !ok {
		t.Fatalf("Version = %v (%T), want a *net.OpError inside", err, err)
	}
	if opErr.Op != "dial" {
		t.Errorf("OpError.Op = %q, want dial", opErr.Op)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	if _, ok := errors.AsType[*firecracker.APIError](err); ok {
		t.Errorf("transport error reported as *APIError: %v", err)
	}
}

func TestCloseIdempotent(t *testing.T) {
	f := newFakeAPI(t, jsonAnswer(map[string]string{"GET /version": `{"firecracker_version":"1.16.1"}`}))
	c := firecracker.NewClient(f.SocketPath)
	if _, err := c.Version(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	// A call after Close dials again.
	if _, err := c.Version(t.Context()); err != nil {
		t.Fatalf("Version after Close: %v", err)
	}
	c.Close()
	if got := f.newConns.Load(); got != 2 {
		t.Errorf("server saw %d connections, want 2", got)
	}
}

func TestConcurrentCalls(t *testing.T) {
	f := newFakeAPI(t, jsonAnswer(map[string]string{
		"GET /version":  `{"firecracker_version":"1.16.1"}`,
		"PATCH /vm":     `{}`,
		"PUT /drives/a": `{}`,
	}))
	c := newClient(t, f)
	c.Timeout = 10 * time.Second
	errs := make(chan error, 8*3*10)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				_, err := c.Version(t.Context())
				errs <- err
				errs <- c.PatchVM(t.Context(), firecracker.VMStatePaused)
				errs <- c.PutDrive(t.Context(), firecracker.Drive{DriveID: "a"})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
