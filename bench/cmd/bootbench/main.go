// Command bootbench compares boot-to-agent-ready under petty's QEMU backend
// with a bare qemu-system-x86_64 boot of the same kernel to a trivial /init.
//
// petty: vm.Create (VMM qemu, 1 vCPU, 256 MiB, the image package's kernel and
// initramfs with a static petty-agent) until Machine.Agent has connected and
// one Ping has answered; then Destroy (not timed).
//
// bare: qemu-system-x86_64 with the same accelerator, machine type and
// devices (built by package qemu from the same Spec), the same kernel and
// kernel command line, and an initramfs made here: a static busybox and an
// /init script that echoes a marker and runs "poweroff -f". Timed from the
// spawn until the marker appears on the serial console (stdout).
//
// Usage:
//
//	go run ./cmd/bootbench [-n 10] [-accel auto|kvm|tcg] [-agent PATH] [-busybox /bin/busybox]
//
// debian (unless -debian=false): the store's default image with the agent
// measured (a cache hit when the store has it; else built or rebuilt
// through the image store, as on petty run's first use) booted as petty run
// boots it: its root file system read-only as /dev/vda, a fresh
// 2 GiB sparse ext4 scratch disk as /dev/vdb (made before the timed part,
// reported apart), the agent mounting the overlay root as PID 1. Timed as
// petty's minimal boot above (vm.Create until a Ping answered), the three
// kinds of boot alternating.
//
// The line "ratio petty/bare-qemu boot=<x>" (p50s) follows the table; the
// last line printed is "ratio debian/minimal boot=<x>" (p50s: the default
// image against petty's minimal image, same host, one run).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/bench/internal/buildbin"
	"github.com/pettyvm/petty/bench/internal/stats"
	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/qemu"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("bootbench: ")
	n := flag.Int("n", 10, "boots per side")
	accel := flag.String("accel", "auto", "accelerator: auto (KVM when usable, as petty decides), kvm or tcg")
	agentBin := flag.String("agent", "", "static petty-agent (default: build cmd/petty-agent with CGO_ENABLED=0)")
	busybox := flag.String("busybox", "/bin/busybox", "static busybox for the bare initramfs")
	debian := flag.Bool("debian", true, "also boot the image store's default image and compare it with the minimal one")
	imageName := flag.String("image", image.DefaultImage, "the store image the Debian comparison boots")
	flag.Parse()
	if *n < 1 {
		log.Fatal("-n must be at least 1")
	}
	if !*debian {
		*imageName = ""
	}
	if err := run(*n, *accel, *agentBin, *busybox, *imageName); err != nil {
		log.Fatal(err)
	}
}

func run(n int, accel, agentBin, busybox, imageName string) error {
	qemuBin, err := qemu.FindBinary()
	if err != nil {
		return fmt.Errorf("%w (apt-get install qemu-system-x86)", err)
	}
	resolved := resolveAccel(accel)
	dir, err := os.MkdirTemp("/tmp", "bb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	agentBin, img, err := buildbin.MinimalImage(dir, agentBin)
	if err != nil {
		return err
	}
	ctx := context.Background()
	bareInitrd := filepath.Join(dir, "bare-initrd.cpio")
	if err := writeBareInitramfs(bareInitrd, img.Initrd, busybox); err != nil {
		return err
	}

	var deb *debianBooter
	if imageName != "" {
		bctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		st, err := storeImage(bctx, imageName, agentBin)
		cancel()
		if err != nil {
			return fmt.Errorf("the Debian comparison (-debian=false skips it): %w", err)
		}
		deb = &debianBooter{accel: accel, qemuBin: qemuBin, runDir: filepath.Join(dir, "run"), dir: dir, img: st}
		if _, err := deb.boot(ctx); err != nil {
			return fmt.Errorf("debian warm-up: %w", err)
		}
	}
	p := &pettyBooter{accel: accel, kernel: img.Kernel, initrd: img.Initrd, runDir: filepath.Join(dir, "run"), qemuBin: qemuBin}
	b := &bareBooter{accel: resolved, kernel: img.Kernel, initrd: bareInitrd, dir: dir, qemuBin: qemuBin}
	// One unmeasured boot each (page cache, QEMU's first start).
	if _, err := p.boot(ctx); err != nil {
		return fmt.Errorf("petty warm-up: %w", err)
	}
	if _, err := b.boot(ctx); err != nil {
		return fmt.Errorf("bare warm-up: %w", err)
	}
	var ps, bs, ds []time.Duration
	for i := range n { // alternate, so that drift hits all alike
		if deb != nil {
			d, err := deb.boot(ctx)
			if err != nil {
				return fmt.Errorf("debian boot %d: %w", i, err)
			}
			ds = append(ds, d)
		}
		d, err := p.boot(ctx)
		if err != nil {
			return fmt.Errorf("petty boot %d: %w", i, err)
		}
		ps = append(ps, d)
		if d, err = b.boot(ctx); err != nil {
			return fmt.Errorf("bare boot %d: %w", i, err)
		}
		bs = append(bs, d)
	}
	fmt.Printf("bootbench: %d boots each, accelerator %s (-accel %s), %s\n", n, resolved, accel, qemuBin)
	if ok, why := qemu.KVMUsable(); !ok {
		fmt.Printf("KVM: %s\n", why)
	}
	fmt.Printf("kernel %s\n1 vCPU, 256 MiB, microvm; petty initrd %s; bare initrd: the same initramfs with a trivial /init (echo a marker, poweroff -f) appended over petty's\n\n", img.Kernel, img.Initrd)
	fmt.Printf("%-44s %8s %8s\n", "boot", "p50 s", "p90 s")
	fmt.Printf("%-44s %8.3f %8.3f\n", "petty: vm.Create → agent Ping answered", sec(stats.Percentile(ps, 50)), sec(stats.Percentile(ps, 90)))
	creates := p.creates[1:] // without the warm-up
	fmt.Printf("%-44s %8.3f %8.3f\n", "  of which vm.Create (spawn → QMP ready)", sec(stats.Percentile(creates, 50)), sec(stats.Percentile(creates, 90)))
	fmt.Printf("%-44s %8.3f %8.3f\n", "bare qemu: spawn → marker on serial", sec(stats.Percentile(bs, 50)), sec(stats.Percentile(bs, 90)))
	fmt.Printf("ratio petty/bare-qemu boot=%.2f\n", stats.Ratio(stats.Percentile(ps, 50), stats.Percentile(bs, 50)))
	if deb != nil {
		fmt.Printf("\nimage %s: kernel %s, initrd %s, base %s (read-only) + 2 GiB scratch disk\n", imageName, deb.img.Kernel, deb.img.Initrd, deb.img.RootFS)
		fmt.Printf("%-52s %8s %8s\n", "boot", "p50 s", "p90 s")
		fmt.Printf("%-52s %8.3f %8.3f\n", "debian ("+imageName+"): vm.Create → agent Ping answered", sec(stats.Percentile(ds, 50)), sec(stats.Percentile(ds, 90)))
		dcreates := deb.creates[1:] // without the warm-up
		fmt.Printf("%-52s %8.3f %8.3f\n", "  of which vm.Create (spawn → QMP ready)", sec(stats.Percentile(dcreates, 50)), sec(stats.Percentile(dcreates, 90)))
		fmt.Printf("%-52s %8.3f %8.3f\n", "minimal: vm.Create → agent Ping answered", sec(stats.Percentile(ps, 50)), sec(stats.Percentile(ps, 90)))
		fmt.Printf("%-52s %8.3f %8.3f\n", "  of which vm.Create (spawn → QMP ready)", sec(stats.Percentile(creates, 50)), sec(stats.Percentile(creates, 90)))
		mkfs := deb.mkfs[1:] // without the warm-up
		fmt.Printf("%-52s %8.3f %8.3f\n", "  debian's scratch disk (mkfs, not in boot)", sec(stats.Percentile(mkfs, 50)), sec(stats.Percentile(mkfs, 90)))
		fmt.Printf("ratio debian/minimal boot=%.2f\n", stats.Ratio(stats.Percentile(ds, 50), stats.Percentile(ps, 50)))
	}
	return nil
}

// resolveAccel decides "auto" the way petty's QEMU backend does.
func resolveAccel(accel string) string {
	switch accel {
	case "kvm":
		return qemu.AccelKVM
	case "tcg":
		return qemu.AccelTCG
	}
	if ok, _ := qemu.KVMUsable(); ok {
		return qemu.AccelKVM
	}
	return qemu.AccelTCG
}

func sec(d time.Duration) float64 { return d.Seconds() }
