package vm

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReadOnlyRootReachesTheVMM checks that a read-only root drive (an
// image's shared base) and a writable extra drive (its VM's scratch disk)
// reach both VMMs as such: Firecracker's is_read_only and QEMU's
// readonly=on (see qemu.Drive).
func TestReadOnlyRootReachesTheVMM(t *testing.T) {
	c := Config{
		Kernel:    "/img/vmlinux",
		RootDrive: Drive{ID: "rootfs", Path: "/img/rootfs.ext4", ReadOnly: true},
		Drives:    []Drive{{ID: "scratch", Path: "/run/scratch.ext4"}},
	}
	type drive struct {
		id       string
		root, ro bool
	}
	var fc []drive
	for _, d := range firecrackerConfig(&c).Drives {
		fc = append(fc, drive{d.DriveID, d.IsRootDevice, d.IsReadOnly != nil && *d.IsReadOnly})
	}
	want := []drive{{"rootfs", true, true}, {"scratch", false, false}}
	if diff := cmp.Diff(want, fc, cmp.AllowUnexported(drive{})); diff != "" {
		t.Errorf("firecracker drives (-want +got):\n%s", diff)
	}
	var q []drive
	for i, d := range qemuSpec("id", &c, "/run/x", qemuHost{}).Drives {
		q = append(q, drive{d.ID, i == 0, d.ReadOnly})
	}
	if diff := cmp.Diff(want, q, cmp.AllowUnexported(drive{})); diff != "" {
		t.Errorf("qemu drives (-want +got):\n%s", diff)
	}
}
