package image

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// syntheticDep mirrors the shape of Debian 6.1's modules.dep for the
// guest modules, with one dependency made compressed and renamed.
const syntheticDep = `kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/vmw_vsock/vsock.ko.xz:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko.xz
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko.xz kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/misc/other-thing.ko: kernel/drivers/virtio/virtio.ko
`

func TestResolveModules(t *testing.T) {
	tests := []struct {
		name    string
		dep     string
		builtin string
		wants   []moduleWant
		want    []string
		wantErr error
	}{
		{
			name:  "guest modules, dependencies first",
			dep:   syntheticDep,
			wants: guestModules,
			want: []string{
				"kernel/drivers/virtio/virtio_ring.ko",
				"kernel/drivers/virtio/virtio.ko",
				"kernel/drivers/virtio/virtio_mmio.ko",
				"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
				"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
				"kernel/drivers/virtio/virtio_pci.ko",
				"kernel/drivers/block/virtio_blk.ko",
				"kernel/net/core/failover.ko",
				"kernel/drivers/net/net_failover.ko",
				"kernel/drivers/net/virtio_net.ko",
				"kernel/drivers/char/virtio_console.ko",
				"kernel/net/vmw_vsock/vsock.ko.xz",
				"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
				"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko",
			},
		},
		{
			name:  "dashes and underscores name the same module",
			dep:   syntheticDep,
			wants: []moduleWant{{name: "other_thing"}},
			want: []string{
				"kernel/drivers/virtio/virtio_ring.ko",
				"kernel/drivers/virtio/virtio.ko",
				"kernel/drivers/misc/other-thing.ko",
			},
		},
		{
			name:    "built-in modules are skipped",
			dep:     "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n",
			builtin: "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_mmio.ko\n",
			wants:   []moduleWant{{name: "virtio_mmio"}, {name: "virtio_blk"}},
			want:    []string{"kernel/drivers/block/virtio_blk.ko"},
		},
		{
			name:  "missing optional module is skipped",
			dep:   "kernel/a.ko:\n",
			wants: []moduleWant{{name: "virtio_pci", optional: true}, {name: "a"}},
			want:  []string{"kernel/a.ko"},
		},
		{
			name:    "missing required module",
			dep:     "kernel/a.ko:\n",
			wants:   []moduleWant{{name: "virtio_blk"}},
			wantErr: ErrModuleNotFound,
		},
		{
			name:    "missing dependency",
			dep:     "kernel/a.ko: kernel/b.ko\n",
			wants:   []moduleWant{{name: "a"}},
			wantErr: ErrModuleNotFound,
		},
		{
			name:  "each module once",
			dep:   "kernel/a.ko: kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\n",
			wants: []moduleWant{{name: "a"}, {name: "b"}, {name: "c"}},
			want:  []string{"kernel/c.ko", "kernel/a.ko", "kernel/b.ko"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := parseModulesDep(strings.NewReader(tt.dep), strings.NewReader(tt.builtin))
			if err != nil {
				t.Fatal(err)
			}
			got, err := db.resolve(tt.wants)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModuleConditions(t *testing.T) {
	db, err := parseModulesDep(strings.NewReader(syntheticDep), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := db.conditions(guestModules)
	want := map[string][]string{
		"kernel/drivers/virtio/virtio_ring.ko":                      {loadAlways},
		"kernel/drivers/virtio/virtio.ko":                           {loadAlways},
		"kernel/drivers/virtio/virtio_mmio.ko":                      {loadAlways},
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko":            {virtioPCI},
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko":            {virtioPCI},
		"kernel/drivers/virtio/virtio_pci.ko":                       {virtioPCI},
		"kernel/drivers/block/virtio_blk.ko":                        {virtioBlock},
		"kernel/net/core/failover.ko":                               {virtioNet},
		"kernel/drivers/net/net_failover.ko":                        {virtioNet},
		"kernel/drivers/net/virtio_net.ko":                          {virtioNet},
		"kernel/drivers/char/virtio_console.ko":                     {virtioConsole},
		"kernel/net/vmw_vsock/vsock.ko.xz":                          {virtioVsock},
		"kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko": {virtioVsock},
		"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko":        {virtioVsock},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
	// A module two devices need lists both; one needed always is "always".
	db, err = parseModulesDep(strings.NewReader("kernel/a.ko: kernel/c.ko\nkernel/b.ko: kernel/c.ko kernel/d.ko\nkernel/c.ko:\nkernel/d.ko:\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	got = db.conditions([]moduleWant{{name: "a", device: virtioNet}, {name: "b", device: virtioBlock}, {name: "d"}})
	want = map[string][]string{
		"kernel/a.ko": {virtioNet},
		"kernel/b.ko": {virtioBlock},
		"kernel/c.ko": {virtioNet, virtioBlock},
		"kernel/d.ko": {loadAlways},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shared dependencies (-want +got):\n%s", diff)
	}
}

func TestResolveModulesCycle(t *testing.T) {
	db, err := parseModulesDep(strings.NewReader("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.resolve([]moduleWant{{name: "a"}}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("err = %v, want a cycle error", err)
	}
}

func TestParseModulesDepMalformed(t *testing.T) {
	if _, err := parseModulesDep(strings.NewReader("kernel/a.ko kernel/b.ko\n"), nil); err == nil {
		t.Error("no error for a line without a colon")
	}
}

func TestDecompressModule(t *testing.T) {
	plain := append([]byte("\x7fELF"), bytes.Repeat([]byte("module"), 1000)...)
	var xzBuf, gzBuf bytes.Buffer
	xw, err := xz.NewWriter(&xzBuf)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()
	gw := gzip.NewWriter(&gzBuf)
	gw.Write(plain)
	gw.Close()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := enc.EncodeAll(plain, nil)
	enc.Close()

	tests := []struct {
		path    string
		data    []byte
		wantErr bool
	}{
		{path: "a.ko", data: plain},
		{path: "a.ko.xz", data: xzBuf.Bytes()},
		{path: "a.ko.gz", data: gzBuf.Bytes()},
		{path: "a.ko.zst", data: zst},
		{path: "a.ko.xz", data: []byte("not xz"), wantErr: true},
		{path: "a.ko.gz", data: func() []byte {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write([]byte("not elf"))
			w.Close()
			return b.Bytes()
		}(), wantErr: true},
		{path: "a.ko.bz2", data: plain, wantErr: true},
	}
	for _, tt := range tests {
		got, err := decompressModule(tt.path, tt.data)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, want error %v", tt.path, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !bytes.Equal(got, plain) {
			t.Errorf("%s: decompressed data differs", tt.path)
		}
	}
	if got := plainModulePath("kernel/net/vsock.ko.zst"); got != "kernel/net/vsock.ko" {
		t.Errorf("plainModulePath = %q", got)
	}
}
