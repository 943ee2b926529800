package guest

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseModulesLoad(t *testing.T) {
	in := "always /lib/modules/r/virtio_ring.ko\n" +
		"\n" +
		"pci:0x1af4 /lib/modules/r/virtio_pci.ko\n" +
		"virtio:0x0013,virtio:0x0003 /lib/modules/r/vsock.ko\n" +
		"lonely\n"
	got, err := parseModulesLoad(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []moduleEntry{
		{when: []string{"always"}, path: "/lib/modules/r/virtio_ring.ko"},
		{when: []string{"pci:0x1af4"}, path: "/lib/modules/r/virtio_pci.ko"},
		{when: []string{"virtio:0x0013", "virtio:0x0003"}, path: "/lib/modules/r/vsock.ko"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(moduleEntry{})); diff != "" {
		t.Errorf("parseModulesLoad (-want +got):\n%s", diff)
	}
}

func TestScanDevices(t *testing.T) {
	sys := fstest.MapFS{
		"bus/pci/devices/0000:00:01.0/vendor": {Data: []byte("0x1af4\n")},
		"bus/pci/devices/0000:00:02.0/vendor": {Data: []byte("0x8086\n")},
		"bus/virtio/devices/virtio0/device":   {Data: []byte("0x0003\n")},
		"bus/virtio/devices/virtio1/device":   {Data: []byte("0x0002\n")},
		"bus/virtio/devices/virtio2/vendor":   {Data: []byte("0x554d4551\n")},
	}
	got := scanDevices(sys)
	want := map[string]bool{"pci:0x1af4": true, "pci:0x8086": true, "virtio:0x0003": true, "virtio:0x0002": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scanDevices (-want +got):\n%s", diff)
	}
	if got := scanDevices(fstest.MapFS{}); len(got) != 0 {
		t.Errorf("empty sysfs: %v", got)
	}
}

// fakeLoader records loads; a load can register devices in sys, as a
// transport module does, or fail.
type fakeLoader struct {
	sys      fstest.MapFS
	adds     map[string]map[string]string // module path -> sys files it creates
	failures map[string]error
	loaded   []string
}

func (l *fakeLoader) loadModule(p string) error {
	l.loaded = append(l.loaded, p)
	for f, data := range l.adds[p] {
		l.sys[f] = &fstest.MapFile{Data: []byte(data)}
	}
	return l.failures[p]
}

func TestLoadListedModules(t *testing.T) {
	list := []moduleEntry{
		{when: []string{"always"}, path: "virtio_ring"},
		{when: []string{"always"}, path: "virtio_mmio"},
		{when: []string{"pci:0x1af4"}, path: "virtio_pci"},
		{when: []string{"virtio:0x0002"}, path: "virtio_blk"},
		{when: []string{"virtio:0x0003"}, path: "virtio_console"},
		{when: []string{"virtio:0x0013"}, path: "vsock"},
		{when: []string{"virtio:0x0001", "virtio:0x0013"}, path: "shared"},
	}
	tests := []struct {
		name     string
		sys      map[string]string            // present before any load
		adds     map[string]map[string]string // registered by a load
		failures map[string]error
		wantCall []string
		wantOK   []string
	}{
		{
			name:     "no devices",
			wantCall: []string{"virtio_ring", "virtio_mmio"},
		},
		{
			name:     "mmio transport registers a console",
			adds:     map[string]map[string]string{"virtio_mmio": {"bus/virtio/devices/virtio0/device": "0x0003\n"}},
			wantCall: []string{"virtio_ring", "virtio_mmio", "virtio_console"},
		},
		{
			name: "pci transport registers vsock; any condition suffices",
			sys:  map[string]string{"bus/pci/devices/0000:00:03.0/vendor": "0x1af4\n"},
			adds: map[string]map[string]string{"virtio_pci": {
				"bus/virtio/devices/virtio0/device": "0x0013\n",
				"bus/virtio/devices/virtio1/device": "0x0002\n",
			}},
			wantCall: []string{"virtio_ring", "virtio_mmio", "virtio_pci", "virtio_blk", "vsock", "shared"},
		},
		{
			name:     "a failed load is skipped, the rest still load",
			sys:      map[string]string{"bus/virtio/devices/virtio0/device": "0x0003\n"},
			failures: map[string]error{"virtio_mmio": errors.New("boom")},
			wantCall: []string{"virtio_ring", "virtio_mmio", "virtio_console"},
			wantOK:   []string{"virtio_ring", "virtio_console"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := fstest.MapFS{}
			for f, d := range tt.sys {
				sys[f] = &fstest.MapFile{Data: []byte(d)}
			}
			l := &fakeLoader{sys: sys, adds: tt.adds, failures: tt.failures}
			ok := loadListedModules(list, sys, l, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if diff := cmp.Diff(tt.wantCall, l.loaded); diff != "" {
				t.Errorf("loads (-want +got):\n%s", diff)
			}
			wantOK := tt.wantOK
			if wantOK == nil {
				wantOK = tt.wantCall
			}
			if diff := cmp.Diff(wantOK, ok); diff != "" {
				t.Errorf("loaded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBootCmdline(t *testing.T) {
	tests := []struct {
		cmdline string
		want    bootParams
	}{
		{"console=ttyS0 quiet", bootParams{hostname: DefaultHostname, listen: DefaultListen}},
		{"petty.listen=serial:///dev/virtio-ports/petty.agent", bootParams{hostname: DefaultHostname, listen: "serial:///dev/virtio-ports/petty.agent"}},
		{"petty.listen=vsock://:1 petty.listen=vsock://:2", bootParams{hostname: DefaultHostname, listen: "vsock://:2"}},
		{"petty.listen=", bootParams{hostname: DefaultHostname, listen: DefaultListen}},
		{"root=/dev/vda ro", bootParams{hostname: DefaultHostname, listen: DefaultListen, root: "/dev/vda"}},
		{"root=/dev/vda root=/dev/vdb", bootParams{hostname: DefaultHostname, listen: DefaultListen, root: "/dev/vda"}},
		{"root=PARTUUID=1234", bootParams{hostname: DefaultHostname, listen: DefaultListen}},
		{"root=/dev/vda petty.root=/dev/vdb", bootParams{hostname: DefaultHostname, listen: DefaultListen, root: "/dev/vdb"}},
		{"petty.root=/dev/vdb root=/dev/vda petty.listen=vsock://:2000", bootParams{hostname: DefaultHostname, listen: "vsock://:2000", root: "/dev/vdb"}},
		{"petty.root=/dev/vda petty.scratch=/dev/vdb root=/dev/vda ro", bootParams{hostname: DefaultHostname, listen: DefaultListen, root: "/dev/vda", scratch: "/dev/vdb"}},
		{"petty.hostname=box1", bootParams{hostname: "box1", listen: DefaultListen}},
		{"petty.hostname=", bootParams{hostname: DefaultHostname, listen: DefaultListen}},
		{"petty.dns=10.0.0.2,2001:db8::1", bootParams{hostname: DefaultHostname, listen: DefaultListen, dns: "10.0.0.2,2001:db8::1"}},
	}
	for _, tt := range tests {
		if got := parseBootCmdline(tt.cmdline); got != tt.want {
			t.Errorf("parseBootCmdline(%q) = %+v, want %+v", tt.cmdline, got, tt.want)
		}
	}
}

// TestBootInitramfsRefusesOutsidePID1: the test binary is not PID 1, so
// BootInitramfs must refuse before touching anything.
func TestBootInitramfsRefusesOutsidePID1(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("running as PID 1")
	}
	if IsInitramfsInit() {
		t.Error("IsInitramfsInit() outside PID 1")
	}
	if _, err := BootInitramfs(nil); !errors.Is(err, ErrNotInitramfsInit) {
		t.Fatalf("BootInitramfs = %v, want ErrNotInitramfsInit", err)
	}
}

func TestLinkVirtioPorts(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	write := func(p, data string) {
		t.Helper()
		p = filepath.Join(sys, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("bus/virtio/devices/virtio0/device", "0x0002\n") // a disk: ignored
	write("bus/virtio/devices/virtio1/device", "0x0003\n")
	write("bus/virtio/devices/virtio1/virtio-ports/vport1p1/name", "petty.agent\n")
	write("bus/virtio/devices/virtio1/virtio-ports/vport1p2/name", "\n") // never named
	write("bus/virtio/devices/virtio1/virtio-ports/vport1p3/name", "../evil\n")
	write("bus/virtio/devices/virtio2/device", "0x0003\n")
	write("bus/virtio/devices/virtio2/virtio-ports/vport2p0/name", "user.port\n")
	if err := os.MkdirAll(filepath.Join(dev, "virtio-ports"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../stale", filepath.Join(dev, "virtio-ports", "petty.agent")); err != nil {
		t.Fatal(err)
	}

	linkVirtioPorts(sys, dev, 20*time.Millisecond)
	got := map[string]string{}
	entries, err := os.ReadDir(filepath.Join(dev, "virtio-ports"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dev, "virtio-ports", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name()] = target
	}
	want := map[string]string{"petty.agent": "../vport1p1", "user.port": "../vport2p0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(dev, "evil")); err == nil {
		t.Error("a port name with a slash escaped /dev/virtio-ports")
	}
}
