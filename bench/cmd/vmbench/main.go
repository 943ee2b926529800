// Command vmbench compares how long petty and firecracker-go-sdk take to
// start and to stop a microVM, both driving petty's fake firecracker (a real
// process speaking Firecracker's v1.16 API), sequentially and concurrently.
//
// Usage:
//
//	go run ./cmd/vmbench [-fake PATH] [-runs 50] [-concurrency 16]
//
// "create" is measured from the call that creates the VM (vm.Create,
// firecracker.NewMachine) until InstanceStart has been acknowledged (Create,
// Machine.Start return). "shutdown" is measured from the graceful shutdown
// request until the VMM process has been reaped (vm.Machine.Shutdown;
// Machine.Shutdown followed by Machine.Wait). The last line printed is
//
//	ratio petty/sdk p50 create=<x> shutdown=<y>
//
// with the sequential medians.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pettyvm/petty/bench/internal/buildbin"
	"github.com/pettyvm/petty/bench/internal/stats"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("vmbench: ")
	fake := flag.String("fake", "", "fake firecracker executable (default: build internal/fakefirecracker)")
	runs := flag.Int("runs", 50, "VMs per driver and mode")
	conc := flag.Int("concurrency", 16, "VMs in flight at once in the concurrent mode")
	brk := flag.Bool("breakdown", false, "also time the phases of petty's start path (vm.New, spawn, socket, each API call)")
	flag.Parse()
	if *runs < 1 || *conc < 1 {
		log.Fatal("-runs and -concurrency must be at least 1")
	}
	if err := run(*fake, *runs, *conc, *brk); err != nil {
		log.Fatal(err)
	}
}

func run(fake string, runs, conc int, brk bool) error {
	// Short paths: unix socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("/tmp", "vmb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if fake == "" {
		if fake, err = buildbin.Build(dir, "firecracker", "github.com/pettyvm/petty/internal/fakefirecracker", nil); err != nil {
			return err
		}
	}
	img, err := newImages(dir)
	if err != nil {
		return err
	}
	drivers := []driver{
		newPettyDriver(fake, img, filepath.Join(dir, "p")),
		newSDKDriver(fake, img, filepath.Join(dir, "s")),
	}
	ctx := context.Background()
	// Warm up: page cache for the fake, first-use costs in both libraries.
	for _, d := range drivers {
		if _, err := measure(ctx, d, 0); err != nil {
			return fmt.Errorf("%s warm-up: %w", d.name(), err)
		}
	}
	fmt.Printf("vmbench: %d VMs per driver and mode, %d at a time when concurrent; fake %s\n", runs, conc, fake)
	fmt.Printf("VM: %d vCPUs, %d MiB, kernel + root drive (dummy files), vsock CID 3\n\n", vcpus, memMiB)

	seq, err := sequential(ctx, drivers, runs)
	if err != nil {
		return err
	}
	par := map[string]results{}
	for _, d := range drivers {
		r, err := concurrent(ctx, d, runs, conc)
		if err != nil {
			return err
		}
		par[d.name()] = r
	}
	printTable(drivers, seq, par)
	if brk {
		fmt.Println()
		if err := breakdown(fake, img, dir, runs); err != nil {
			return err
		}
		fmt.Println()
	}
	p, s := seq["petty"], seq["sdk"]
	fmt.Printf("ratio petty/sdk p50 create=%.2f shutdown=%.2f\n",
		stats.Ratio(stats.Percentile(p.create, 50), stats.Percentile(s.create, 50)),
		stats.Ratio(stats.Percentile(p.shutdown, 50), stats.Percentile(s.shutdown, 50)))
	return nil
}
