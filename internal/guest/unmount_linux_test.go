package guest

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUnmountPlan(t *testing.T) {
	tests := []struct {
		name      string
		mountinfo string
		want      []unmountStep
	}{
		{
			name: "initramfs guest with a data drive",
			mountinfo: `1 1 0:2 / / rw - rootfs rootfs rw
16 1 0:4 / /proc rw - proc proc rw
17 1 0:19 / /sys rw - sysfs sysfs rw
18 1 0:5 / /dev rw - devtmpfs devtmpfs rw
19 18 0:20 / /dev/pts rw - devpts devpts rw
20 1 0:21 / /tmp rw - tmpfs tmpfs rw
21 1 0:22 / /run rw - tmpfs tmpfs rw
22 1 254:0 / /data rw - ext4 /dev/vda rw
`,
			want: []unmountStep{
				{"/dev/pts", actUnmount},
				{"/data", actUnmount},
				{"/run", actUnmount},
				{"/tmp", actUnmount},
				{"/dev", actUnmount},
				{"/sys", actUnmount},
				{"/proc", actUnmount},
				{"/", actRemountRO},
			},
		},
		{
			name: "mounted in an order mountinfo does not follow",
			mountinfo: `30 1 254:0 / / rw - ext4 /dev/vda rw
40 42 254:16 / /mnt/a/b rw - ext4 /dev/vdb rw
42 30 254:32 / /mnt/a rw - ext4 /dev/vdc rw
43 30 0:5 / /dev rw - devtmpfs devtmpfs rw
`,
			want: []unmountStep{
				{"/mnt/a/b", actUnmount},
				{"/dev", actUnmount},
				{"/mnt/a", actUnmount},
				{"/", actRemountRO},
			},
		},
		{
			name: "mounted twice on one point, escaped names, garbage",
			mountinfo: `1 0 254:0 / / rw - ext4 /dev/vda rw
2 1 254:16 / /my\040data rw - ext4 /dev/vdb rw
3 1 254:32 / /my\040data rw - ext4 /dev/vdc rw
not a mount line
4 x 0:1 / /bad rw - tmpfs tmpfs rw
5 1 0:1 / /back\134slash rw - tmpfs tmpfs rw
`,
			want: []unmountStep{
				{`/back\slash`, actUnmount},
				{"/my data", actUnmount}, // the top mount first
				{"/my data", actUnmount},
				{"/", actRemountRO},
			},
		},
		{
			name: "switch_root: the initramfs root under the real root",
			mountinfo: `1 1 0:2 / / rw - rootfs rootfs rw
25 1 254:0 / / rw - ext4 /dev/vda rw
26 25 0:4 / /proc rw - proc proc rw
`,
			want: []unmountStep{
				{"/proc", actUnmount},
				{"/", actRemountRO},
				{"/", actRemountRO},
			},
		},
		{name: "empty", want: []unmountStep{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := unmountPlan(parseMountinfo([]byte(tt.mountinfo)))
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(unmountStep{})); diff != "" {
				t.Errorf("unmountPlan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatHoldsFiles(t *testing.T) {
	tests := []struct {
		name, stat string
		want       bool
	}{
		{"user process", "42 (sh) S 1 42 42 0 -1 4194560 100 0 0 0", true},
		{"comm with spaces and parens", "42 (a) b (c) R 1 42 42 0 -1 4194304 1 0", true},
		{"kernel thread", "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0", false},
		{"zombie", "43 (sleep) Z 1 43 43 0 -1 4227076 0 0", false},
		{"truncated", "44 (x) S 1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := statHoldsFiles([]byte(tt.stat)); got != tt.want {
				t.Errorf("statHoldsFiles(%q) = %v, want %v", tt.stat, got, tt.want)
			}
		})
	}
}

// TestReleaseFilesystemsRefusesOutsideGuest calls releaseFilesystems in
// the test process, which is not PID 1: it must touch nothing (no signal,
// no unmount, no read-only remount of the host's file systems).
func TestReleaseFilesystemsRefusesOutsideGuest(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("the test process is PID 1")
	}
	before, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no /proc/self/mountinfo: %v", err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	var logs bytes.Buffer
	releaseFilesystems(slog.New(slog.NewTextHandler(&logs, nil)))
	after, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(before), string(after)); diff != "" {
		t.Errorf("mounts changed (-before +after):\n%s", diff)
	}
	if err := sleeper.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("a process of the host was signalled: %v", err)
	}
	if !strings.Contains(logs.String(), "not the guest's init") {
		t.Errorf("no refusal logged: %q", logs.String())
	}
}
