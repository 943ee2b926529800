package vm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testFiles creates a kernel and a drive file in a temp dir.
func testFiles(t *testing.T) (kernel, drive string) {
	t.Helper()
	dir := t.TempDir()
	kernel = filepath.Join(dir, "vmlinux")
	drive = filepath.Join(dir, "rootfs.ext4")
	for _, p := range []string{kernel, drive} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return kernel, drive
}

// validConfig returns a Config that passes Validate (the firecracker binary
// is /bin/true, which exists everywhere).
func validConfig(t *testing.T) Config {
	kernel, drive := testFiles(t)
	return Config{Kernel: kernel, RootDrive: Drive{Path: drive}, FirecrackerBin: "/bin/true", RunDir: filepath.Join(t.TempDir(), "run")}
}

func TestDefaults(t *testing.T) {
	t.Setenv(FirecrackerBinEnv, "/opt/fc/firecracker")
	c := Config{Kernel: "/k", RootDrive: Drive{Path: "/r"}, Drives: []Drive{{Path: "/a"}, {ID: "x", Path: "/b"}}, Vsock: &Vsock{}}
	got := c.withDefaults()
	want := Config{
		VMM: Firecracker, VCPUs: 2, MemoryMiB: 256, Kernel: "/k", BootArgs: DefaultBootArgs,
		RootDrive: Drive{ID: "rootfs", Path: "/r"},
		Drives:    []Drive{{ID: "drive0", Path: "/a"}, {ID: "x", Path: "/b"}},
		Vsock:     &Vsock{CID: 3}, FirecrackerBin: "/opt/fc/firecracker", Accel: "auto", RunDir: defaultRunDir(),
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Config{}, "Logger")); diff != "" {
		t.Errorf("withDefaults (-want +got):\n%s", diff)
	}
	if got.Logger == nil {
		t.Error("Logger not defaulted")
	}
	if c.Vsock.CID != 0 || c.Drives[0].ID != "" {
		t.Error("withDefaults mutated the caller's Config")
	}
}

func TestValidateAcceptsValidConfig(t *testing.T) {
	if err := validConfig(t).Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	_, drive := testFiles(t)
	ro := filepath.Join(t.TempDir(), "ro.img")
	if err := os.WriteFile(ro, nil, 0o400); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"unknown vmm", func(c *Config) { c.VMM = "xen" }, "VMM"},
		{"missing firecracker", func(c *Config) { c.FirecrackerBin = "/nonexistent/firecracker" }, "FirecrackerBin"},
		{"missing qemu", func(c *Config) { c.VMM = QEMU; c.QEMUBin = "/nonexistent/qemu" }, "QEMUBin"},
		{"bad accel", func(c *Config) { c.Accel = "hvf" }, "Accel"},
		{"negative vcpus", func(c *Config) { c.VCPUs = -1 }, "VCPUs"},
		{"too many vcpus", func(c *Config) { c.VCPUs = 33 }, "VCPUs"},
		{"odd vcpus with smt", func(c *Config) { c.VCPUs = 3; c.SMT = true }, "VCPUs"},
		{"too little memory", func(c *Config) { c.MemoryMiB = 64 }, "MemoryMiB"},
		{"more memory than host", func(c *Config) { c.MemoryMiB = 1 << 30 }, "MemoryMiB"},
		{"no kernel", func(c *Config) { c.Kernel = "" }, "Kernel"},
		{"missing kernel", func(c *Config) { c.Kernel = "/nonexistent/vmlinux" }, "Kernel"},
		{"kernel is a dir", func(c *Config) { c.Kernel = t.TempDir() }, "Kernel"},
		{"missing initrd", func(c *Config) { c.Initrd = "/nonexistent/initrd" }, "Initrd"},
		{"root drive without path", func(c *Config) { c.RootDrive = Drive{ID: "root"} }, "RootDrive.Path"},
		{"bad root drive id", func(c *Config) { c.RootDrive.ID = "root-fs" }, "RootDrive.ID"},
		{"missing drive", func(c *Config) { c.Drives = []Drive{{Path: "/nonexistent"}} }, "Drives[0].Path"},
		{"drive without path", func(c *Config) { c.Drives = []Drive{{ID: "data"}} }, "Drives[0].Path"},
		{"duplicate drive id", func(c *Config) { c.Drives = []Drive{{ID: "rootfs", Path: drive}} }, "Drives[0].ID"},
		{"bad drive id", func(c *Config) { c.Drives = []Drive{{ID: "a b", Path: drive}} }, "Drives[0].ID"},
		{"huge boot args", func(c *Config) { c.BootArgs = strings.Repeat("x", 2040) }, "BootArgs"},
		{"boot args too long with qemu's parameters", func(c *Config) {
			c.VMM, c.QEMUBin, c.BootArgs = QEMU, "/bin/true", strings.Repeat("x", 950) // fits Firecracker's additions
		}, "BootArgs"},
		{"double quote under qemu", func(c *Config) {
			c.VMM, c.QEMUBin, c.BootArgs = QEMU, "/bin/true", `console=ttyS0 init="/bin/sh"`
		}, "BootArgs"},
		{"network without tap", func(c *Config) { c.Network = &Network{} }, "Network.Tap"},
		{"long tap name", func(c *Config) { c.Network = &Network{Tap: "tap0123456789abcdef"} }, "Network.Tap"},
		{"bad mac", func(c *Config) { c.Network = &Network{Tap: "lo", MAC: "nope"} }, "Network.MAC"},
		{"multicast mac", func(c *Config) { c.Network = &Network{Tap: "lo", MAC: "01:00:5e:00:00:01"} }, "Network.MAC"},
		{"dotted mac", func(c *Config) { c.Network = &Network{Tap: "lo", MAC: "0600.ac10.0002"} }, "Network.MAC"},
		{"missing tap", func(c *Config) { c.Network = &Network{Tap: "nosuchtap0"} }, "Network.Tap"},
		{"unsafe run dir", func(c *Config) { c.RunDir = filepath.Dir(c.Kernel) }, "RunDir"},
		{"reserved cid", func(c *Config) { c.Vsock = &Vsock{CID: 2} }, "Vsock.CID"},
		{"long vsock path", func(c *Config) { c.Vsock = &Vsock{Path: "/tmp/" + strings.Repeat("v", 100)} }, "Vsock.Path"},
		{"vsock dir missing", func(c *Config) { c.Vsock = &Vsock{Path: "/nonexistent/v.sock"} }, "Vsock.Path"},
		{"long run dir", func(c *Config) { c.RunDir = "/" + strings.Repeat("r", 90) }, "RunDir"},
	}
	if os.Geteuid() != 0 {
		tests = append(tests, struct {
			name   string
			mutate func(*Config)
			field  string
		}{"read-only file as rw drive", func(c *Config) { c.Drives = []Drive{{Path: ro}} }, "Drives[0].Path"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want an ErrInvalidConfig", err)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tt.field)
			}
			if _, err := New(c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestValidateJoinsAllErrors(t *testing.T) {
	c := Config{VCPUs: 99, MemoryMiB: 1, FirecrackerBin: "/bin/true", Network: &Network{}}
	err := c.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fields = append(fields, e.(*FieldError).Field)
	}
	want := []string{"VCPUs", "MemoryMiB", "Kernel", "Network.Tap"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestNewDoesNotRetainCallerConfig(t *testing.T) {
	c := validConfig(t)
	c.Drives = []Drive{{Path: c.RootDrive.Path + "2"}}
	if err := os.WriteFile(c.Drives[0].Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Vsock = &Vsock{}
	before := c.clone()
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	if diff := cmp.Diff(before, c); diff != "" {
		t.Errorf("New mutated the caller's Config:\n%s", diff)
	}
	c.Drives[0].ID = "changed"
	got := m.Config()
	if got.Drives[0].ID != "drive0" || got.Vsock.Path != filepath.Join(m.RunDir(), "vsock.sock") {
		t.Errorf("Config() = %+v", got)
	}
	got.Drives[0].ID = "mutated"
	if m.Config().Drives[0].ID != "drive0" {
		t.Error("Config() is not a deep copy")
	}
	// New has no side effects: the run directory (and its root) appear at
	// Start.
	if _, err := os.Lstat(c.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New created the run directory root %s (err=%v)", c.RunDir, err)
	}
	if m.State() != Created || m.PID() != 0 {
		t.Errorf("State=%v PID=%d", m.State(), m.PID())
	}
}

func TestBuilderMirrorsConfig(t *testing.T) {
	b := new(Builder).VMM(QEMU).VCPUs(4).MemoryMiB(512).Kernel("k", "i").BootArgs("console=ttyS0").
		RootFS("r").Drive(Drive{ID: "data", Path: "d", ReadOnly: true}).Network("tap0", "06:00:00:00:00:01").
		Vsock(7).FirecrackerBin("fc").RunDir("/run/x")
	want := Config{
		VMM: QEMU, VCPUs: 4, MemoryMiB: 512, Kernel: "k", Initrd: "i", BootArgs: "console=ttyS0",
		RootDrive: Drive{Path: "r"}, Drives: []Drive{{ID: "data", Path: "d", ReadOnly: true}},
		Network: &Network{Tap: "tap0", MAC: "06:00:00:00:00:01"}, Vsock: &Vsock{CID: 7},
		FirecrackerBin: "fc", RunDir: "/run/x",
	}
	got := b.Config()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Builder.Config (-want +got):\n%s", diff)
	}
	got.Drives[0].ID = "changed"
	if b.Config().Drives[0].ID != "data" {
		t.Error("Builder.Config is not a deep copy")
	}
}

func TestRelativePathsAreResolved(t *testing.T) {
	c := validConfig(t)
	t.Chdir(filepath.Dir(c.Kernel))
	c.Kernel = filepath.Base(c.Kernel)
	c.RootDrive.Path = "./" + filepath.Base(c.RootDrive.Path)
	m, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Destroy(t.Context())
	got := m.Config()
	if !filepath.IsAbs(got.Kernel) || !filepath.IsAbs(got.RootDrive.Path) {
		t.Errorf("paths not resolved: %q %q", got.Kernel, got.RootDrive.Path)
	}
	if got.FirecrackerBin != "/bin/true" {
		t.Errorf("FirecrackerBin = %q", got.FirecrackerBin)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Created: "created", Running: "running", Stopped: "stopped", State(42): "unknown"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q", s, s.String())
		}
	}
}

func TestCmdlineLimitCountsFirecrackerAdditions(t *testing.T) {
	c := validConfig(t)
	c.BootArgs = strings.Repeat("x", 1940) // 2048 less the drive, root= and token parameters
	if err := c.Validate(); err != nil {
		t.Errorf("1940 bytes of boot args with one drive under Firecracker: %v", err)
	}
}
