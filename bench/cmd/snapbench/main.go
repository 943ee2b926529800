// Command snapbench compares a cold boot with a snapshot restore under
// petty's QEMU backend, measures the sandbox Manager's warm-pool acquire and
// the memory an idle clone costs, all on one image in one run.
//
// cold: vm.Create (1 vCPU, 256 MiB, the image package's minimal kernel and
// initramfs with a static petty-agent) until the agent answered a Ping.
//
// restore: vm.Restore of a snapshot of such a VM (taken once, at
// agent-ready, before the timed part) until the clone's agent took its new
// identity (vm.Restore's refresh: entropy, clock, host name) and answered a
// Ping on a new connection. Cold boots and restores alternate, -n of each.
//
// pool acquire: a sandbox.Manager with Snapshots and Pool 1; each of -acquires
// rounds waits for the pool to be full, times Manager.Create (a health-check
// Ping and the hand-out), then destroys the sandbox (not timed).
//
// clone PSS: -clones clones restored side by side and left idle for
// -idle, the p50 of their QEMUs' Pss (/proc/PID/smaps_rollup); clones
// share the snapshot's memory file pages they have not written. A
// cold-booted VM's Pss, idle as long, is printed for comparison.
//
// Usage:
//
//	go run ./cmd/snapbench [-n 5] [-acquires 50] [-clones 3] [-accel auto|kvm|tcg] [-agent PATH]
//
// The last line printed is
// "ratio restore/cold ready=<x> pool-acquire-p50-ms=<y> clone-pss-mib=<z>".
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pettyvm/petty/bench/internal/buildbin"
	"github.com/pettyvm/petty/bench/internal/stats"
	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/sandbox"
	"github.com/pettyvm/petty/vm"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("snapbench: ")
	n := flag.Int("n", 5, "cold boots and restores each")
	acquires := flag.Int("acquires", 50, "pool acquires")
	clones := flag.Int("clones", 3, "idle clones whose memory is measured")
	idle := flag.Duration("idle", 3*time.Second, "how long the clones idle before their memory is read")
	accel := flag.String("accel", "auto", "accelerator: auto, kvm or tcg")
	agentBin := flag.String("agent", "", "static petty-agent (default: build cmd/petty-agent with CGO_ENABLED=0)")
	flag.Parse()
	if *n < 1 || *acquires < 1 || *clones < 1 {
		log.Fatal("-n, -acquires and -clones must be at least 1")
	}
	if err := run(*n, *acquires, *clones, *idle, *accel, *agentBin); err != nil {
		log.Fatal(err)
	}
}

// bench holds what every measurement shares.
type bench struct {
	cfg vm.Config // cold-boot template: image, size, run root
}

func run(n, acquires, clones int, idle time.Duration, accel, agentBin string) error {
	qemuBin, err := qemu.FindBinary()
	if err != nil {
		return fmt.Errorf("%w (apt-get install qemu-system-x86)", err)
	}
	dir, err := os.MkdirTemp("/tmp", "sb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	agentBin, img, err := buildbin.MinimalImage(dir, agentBin)
	if err != nil {
		return err
	}
	ctx := context.Background()
	b := &bench{cfg: vm.Config{VMM: vm.QEMU, Accel: accel, VCPUs: 1, MemoryMiB: 256,
		Kernel: img.Kernel, Initrd: img.Initrd, QEMUBin: qemuBin, RunDir: filepath.Join(dir, "run")}}

	snap := filepath.Join(dir, "snap")
	if err := b.snapshot(ctx, snap); err != nil {
		return fmt.Errorf("taking the snapshot: %w", err)
	}
	// One unmeasured boot and restore (page cache, QEMU's first start).
	if _, err := b.cold(ctx); err != nil {
		return fmt.Errorf("cold warm-up: %w", err)
	}
	if _, err := b.restore(ctx, snap); err != nil {
		return fmt.Errorf("restore warm-up: %w", err)
	}
	var colds, restores []time.Duration
	for i := range n {
		d, err := b.cold(ctx)
		if err != nil {
			return fmt.Errorf("cold boot %d: %w", i, err)
		}
		colds = append(colds, d)
		if d, err = b.restore(ctx, snap); err != nil {
			return fmt.Errorf("restore %d: %w", i, err)
		}
		restores = append(restores, d)
	}
	acq, err := b.pool(ctx, dir, img, acquires)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	clonePSS, coldPSS, err := b.pss(ctx, snap, clones, idle)
	if err != nil {
		return fmt.Errorf("memory: %w", err)
	}

	resolved := accel
	if accel == "auto" {
		resolved = qemu.AccelTCG
		if ok, _ := qemu.KVMUsable(); ok {
			resolved = qemu.AccelKVM
		}
	}
	fmt.Printf("snapbench: accelerator %s (-accel %s), %s\nkernel %s\ninitrd %s\n1 vCPU, 256 MiB, microvm\n\n", resolved, accel, qemuBin, img.Kernel, img.Initrd)
	fmt.Printf("%-56s %9s %9s\n", "", "p50", "p90")
	fmt.Printf("%-56s %8.3fs %8.3fs\n", fmt.Sprintf("cold: vm.Create → agent Ping answered (%d)", n), stats.Percentile(colds, 50).Seconds(), stats.Percentile(colds, 90).Seconds())
	fmt.Printf("%-56s %8.3fs %8.3fs\n", fmt.Sprintf("restore: vm.Restore → agent Ping answered (%d)", n), stats.Percentile(restores, 50).Seconds(), stats.Percentile(restores, 90).Seconds())
	fmt.Printf("%-56s %7.2fms %7.2fms\n", fmt.Sprintf("pool: Manager.Create from a full pool (%d)", acquires), stats.Ms(stats.Percentile(acq, 50)), stats.Ms(stats.Percentile(acq, 90)))
	fmt.Printf("%-56s %7.1fMiB\n", fmt.Sprintf("idle clone's QEMU Pss, p50 of %d side by side", clones), clonePSS)
	fmt.Printf("%-56s %7.1fMiB\n", "idle cold-booted QEMU's Pss", coldPSS)
	fmt.Printf("ratio restore/cold ready=%.2f pool-acquire-p50-ms=%.2f clone-pss-mib=%.1f\n",
		stats.Ratio(stats.Percentile(restores, 50), stats.Percentile(colds, 50)), stats.Ms(stats.Percentile(acq, 50)), clonePSS)
	return nil
}

// ping waits for m's agent and one Ping on a new connection.
func ping(ctx context.Context, m *vm.Machine) error {
	c, err := m.Agent(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Ping(ctx)
	return err
}

// boot cold-boots a VM and waits for its agent.
func (b *bench) boot(ctx context.Context) (*vm.Machine, error) {
	m, err := vm.Create(ctx, b.cfg)
	return answered(ctx, m, err)
}

// answered returns m (started with err) once its agent answers a Ping;
// a VM whose agent does not answer is destroyed.
func answered(ctx context.Context, m *vm.Machine, err error) (*vm.Machine, error) {
	if err != nil {
		return nil, err
	}
	if err := ping(ctx, m); err != nil {
		_ = m.Destroy(context.WithoutCancel(ctx))
		return nil, err
	}
	return m, nil
}

// snapshot cold-boots a VM, snapshots it into dir at agent-ready and
// destroys it.
func (b *bench) snapshot(ctx context.Context, dir string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	m, err := b.boot(ctx)
	if err != nil {
		return err
	}
	defer m.Destroy(context.WithoutCancel(ctx))
	return m.Snapshot(ctx, dir)
}

// cold times a cold boot to a Ping answered.
func (b *bench) cold(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.Now()
	m, err := b.boot(ctx)
	if err != nil {
		return 0, err
	}
	d := time.Since(t)
	return d, m.Destroy(context.WithoutCancel(ctx))
}

// clone restores the snapshot in dir and waits for a Ping.
func (b *bench) clone(ctx context.Context, dir string) (*vm.Machine, error) {
	m, err := vm.Restore(ctx, dir, vm.RestoreOptions{VMM: vm.QEMU, RunDir: b.cfg.RunDir, QEMUBin: b.cfg.QEMUBin, Hostname: "clone"})
	return answered(ctx, m, err)
}

// restore times a restore to a Ping answered.
func (b *bench) restore(ctx context.Context, dir string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.Now()
	m, err := b.clone(ctx, dir)
	if err != nil {
		return 0, err
	}
	d := time.Since(t)
	return d, m.Destroy(context.WithoutCancel(ctx))
}

// pool times n acquires from a full warm pool of one.
func (b *bench) pool(ctx context.Context, dir string, img *image.Image, n int) ([]time.Duration, error) {
	cfg := b.cfg
	cfg.Kernel, cfg.Initrd = "", ""
	mgr, err := sandbox.NewManager(sandbox.Config{
		Images: func(context.Context, string) (sandbox.Image, error) {
			return sandbox.Image{Kernel: img.Kernel, Initrd: img.Initrd}, nil
		},
		VM: cfg, BootTimeout: 2 * time.Minute, WorkDir: dir,
		Snapshots: true, StateDir: filepath.Join(dir, "state"), Pool: 1,
	})
	if err != nil {
		return nil, err
	}
	defer mgr.Close(context.WithoutCancel(ctx))
	var out []time.Duration
	for i := range n {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := mgr.WaitPool(wctx)
		cancel()
		if err != nil {
			return nil, err
		}
		var steps []string
		t := time.Now()
		s, err := mgr.Create(ctx, sandbox.Options{Progress: func(s string) { steps = append(steps, s) }})
		d := time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("acquire %d: %w", i, err)
		}
		if !slices.Contains(steps, "acquired from the pool") {
			return nil, fmt.Errorf("acquire %d did not come from the pool: %q", i, steps)
		}
		out = append(out, d)
		if err := mgr.Destroy(ctx, s.ID()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pss restores clones side by side, lets them idle and returns the p50 of
// their Pss, and the Pss of a cold-booted VM idle as long, in MiB.
func (b *bench) pss(ctx context.Context, dir string, clones int, idle time.Duration) (float64, float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var ms []*vm.Machine
	defer func() {
		for _, m := range ms {
			_ = m.Destroy(context.WithoutCancel(ctx))
		}
	}()
	for range clones {
		m, err := b.clone(ctx, dir)
		if err != nil {
			return 0, 0, err
		}
		ms = append(ms, m)
	}
	cold, err := b.boot(ctx)
	if err != nil {
		return 0, 0, err
	}
	ms = append(ms, cold)
	time.Sleep(idle) // the guests idle: what they cost at rest
	var ps []float64
	for _, m := range ms[:clones] {
		p, err := pssMiB(m.PID())
		if err != nil {
			return 0, 0, err
		}
		ps = append(ps, p)
	}
	slices.Sort(ps)
	coldPSS, err := pssMiB(cold.PID())
	if err != nil {
		return 0, 0, err
	}
	return ps[(len(ps)-1)/2], coldPSS, nil
}

// pssMiB sums the Pss of process pid (/proc/PID/smaps_rollup), in MiB.
func pssMiB(pid int) (float64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("smaps_rollup of %d: %w", pid, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("smaps_rollup of %d: no Pss line", pid)
}
