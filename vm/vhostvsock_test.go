package vm

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeVhostVsock stands in for /dev/vhost-vsock: CIDs are global across
// its instances, as in the kernel, and a taken one is EADDRINUSE.
type fakeVhostVsock struct {
	mu      sync.Mutex
	held    map[uint64]*os.File
	openErr error
	tried   []uint64
}

func newFakeVhostVsock(held ...uint64) *fakeVhostVsock {
	d := &fakeVhostVsock{held: map[uint64]*os.File{}}
	for _, c := range held {
		d.held[c] = nil
	}
	return d
}

func (d *fakeVhostVsock) open() (*os.File, error) {
	if d.openErr != nil {
		return nil, d.openErr
	}
	return os.Open(os.DevNull)
}

func (d *fakeVhostVsock) setGuestCID(f *os.File, cid uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tried = append(d.tried, cid)
	if cid < minGuestCID || cid >= maxGuestCID {
		return unix.EINVAL
	}
	if owner, ok := d.held[cid]; ok && owner != f {
		return unix.EADDRINUSE
	}
	d.held[cid] = f
	return nil
}

// sequence returns a "random" source that yields cids in order.
func sequence(cids ...uint32) func() uint32 {
	var mu sync.Mutex
	i := 0
	return func() uint32 {
		mu.Lock()
		defer mu.Unlock()
		c := cids[i%len(cids)]
		i++
		return c
	}
}

func TestClaimCID(t *testing.T) {
	tests := []struct {
		name    string
		held    []uint64
		want    uint32
		random  func() uint32
		openErr error
		wantCID uint32
		wantErr error
		tried   []uint64
	}{
		{name: "any: first random is free", random: sequence(1234), wantCID: 1234, tried: []uint64{1234}},
		{name: "any: skips taken CIDs", held: []uint64{10, 11}, random: sequence(10, 11, 12), wantCID: 12, tried: []uint64{10, 11, 12}},
		{name: "explicit free", want: 77, random: sequence(5), wantCID: 77, tried: []uint64{77}},
		{name: "explicit taken", held: []uint64{77}, want: 77, random: sequence(5), wantErr: ErrCIDInUse, tried: []uint64{77}},
		{name: "all taken", held: []uint64{9}, random: sequence(9), wantErr: ErrCIDInUse},
		{name: "no device", openErr: os.ErrPermission, random: sequence(5), wantErr: os.ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newFakeVhostVsock(tt.held...)
			d.openErr = tt.openErr
			f, cid, err := claimCID(d, tt.want, tt.random)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("claimCID = %d, %v; want error %v", cid, err, tt.wantErr)
			}
			if err != nil {
				if f != nil {
					t.Error("a file came back with the error")
				}
			} else {
				defer f.Close()
				if cid != tt.wantCID {
					t.Errorf("CID = %d, want %d", cid, tt.wantCID)
				}
			}
			if tt.tried != nil && !slices.Equal(d.tried, tt.tried) {
				t.Errorf("tried %v, want %v", d.tried, tt.tried)
			}
			if tt.name == "all taken" && len(d.tried) != cidClaimTries {
				t.Errorf("tried %d CIDs, want %d", len(d.tried), cidClaimTries)
			}
		})
	}
}

// TestClaimCIDConcurrent claims CIDs from many goroutines with a random
// source that collides often: each gets its own.
func TestClaimCIDConcurrent(t *testing.T) {
	d := newFakeVhostVsock()
	random := func() uint32 { return minGuestCID + randomCID()%40 }
	const n = 32
	cids := make([]uint32, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			f, cid, err := claimCID(d, 0, random)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { f.Close() })
			cids[i] = cid
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, c := range cids {
		if seen[c] {
			t.Errorf("CID %d given twice: %v", c, cids)
		}
		seen[c] = true
	}
}

func TestRandomCIDRange(t *testing.T) {
	for range 10000 {
		if c := randomCID(); c < minGuestCID || c >= maxGuestCID {
			t.Fatalf("randomCID() = %d", c)
		}
	}
}

// TestQEMUCommandClaimsCID checks the QEMU command of a VM with vsock on a
// host with vhost-vsock: petty claims the CID, passes the descriptor as fd
// 3 (vhostfd=3) and closes it at release; an explicit CID is kept.
func TestQEMUCommandClaimsCID(t *testing.T) {
	old := probeHost
	probeHost = func(string) qemuHost { return qemuHost{vhostVsock: true} }
	t.Cleanup(func() { probeHost = old })
	for _, tc := range []struct {
		cid  uint32
		want string
	}{
		{0, ""}, // any: the CID tried
		{9, "vhost-vsock-device,guest-cid=9,vhostfd=3"},
	} {
		t.Run(fmt.Sprint(tc.cid), func(t *testing.T) {
			c := Config{VMM: QEMU, Kernel: "/k", QEMUBin: "/nonexistent/qemu", Vsock: &Vsock{CID: tc.cid}}.withDefaults()
			d := newFakeVhostVsock()
			q := &qemuBackend{log: c.Logger, vsockDev: d}
			// randomCID cannot be replaced here: check the CID it chose.
			cmd, err := q.command(&boot{id: "0123456789abcdef", cfg: &c, runDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if len(cmd.ExtraFiles) != 1 || cmd.ExtraFiles[0] != q.vsockFile {
				t.Fatalf("ExtraFiles = %v, want the claimed vhost-vsock instance", cmd.ExtraFiles)
			}
			want := tc.want
			if tc.cid == 0 {
				if len(d.tried) != 1 {
					t.Fatalf("tried %v", d.tried)
				}
				want = fmt.Sprintf("vhost-vsock-device,guest-cid=%d,vhostfd=3", d.tried[0])
			}
			if !slices.Contains(cmd.Args, want) {
				t.Errorf("args lack %q:\n%s", want, strings.Join(cmd.Args, " "))
			}
			if q.spec.AgentSocket != "" {
				t.Error("agent on virtio-serial although vhost-vsock is there")
			}
			q.release()
			if err := q.vsockFile.Close(); !errors.Is(err, os.ErrClosed) {
				t.Errorf("the vhost-vsock descriptor is still open after release (Close = %v)", err)
			}
		})
	}
}
