package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pettyvm/petty/bench/internal/stats"
	"github.com/pettyvm/petty/firecracker"
	"github.com/pettyvm/petty/vm"
)

// breakdown times the pieces of petty's start path one by one, sequentially:
// vm.New (validation, run directory), spawning the fake, the time until its
// API socket accepts a connection (polled every 20µs), and each API call made
// with petty's firecracker.Client. It also reports how late petty's
// waitForSocket schedule (100µs doubling to a 5ms cap) would notice the
// socket, given when it really appeared.
func breakdown(fake string, img images, dir string, runs int) error {
	ctx := context.Background()
	names := []string{"vm.New (validate+mkdir)", "petty Start total", "petty Start: socket file seen→return",
		"raw: exec start", "raw: spawn→socket accepts", "raw: waitForSocket lateness (model)",
		"raw: PUT /machine-config", "raw: PUT /boot-source", "raw: PUT /drives/rootfs", "raw: PUT /vsock", "raw: PUT /actions InstanceStart", "raw: sum of API calls"}
	samples := make([][]time.Duration, len(names))
	cfg := newPettyDriver(fake, img, filepath.Join(dir, "b")).cfg
	for i := range runs + 1 {
		t := time.Now()
		m, err := vm.New(cfg)
		dNew := time.Since(t)
		if err != nil {
			return err
		}
		dStart, dAfterSock, err := watchedStart(ctx, m)
		_ = m.Destroy(ctx)
		if err != nil {
			return err
		}

		d, err := rawBoot(ctx, fake, img, filepath.Join(dir, "raw"+strconv.Itoa(i)))
		if err != nil {
			return err
		}
		if i == 0 {
			continue // warm-up
		}
		row := append([]time.Duration{dNew, dStart, dAfterSock}, d...)
		for j := range row {
			samples[j] = append(samples[j], row[j])
		}
	}
	fmt.Printf("petty start-path breakdown, %d sequential boots (ms):\n", runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tp50\tp90\t")
	for j, n := range names {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", n, ms(stats.Percentile(samples[j], 50)), ms(stats.Percentile(samples[j], 90)))
	}
	return tw.Flush()
}

// rawBoot spawns the fake as petty does and drives it with petty's client,
// timing each step.
func rawBoot(ctx context.Context, fake string, img images, dir string) ([]time.Duration, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "firecracker.sock")
	cmd := exec.Command(fake, "--api-sock", sock, "--id", "breakdown")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	dExec := time.Since(t0)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(t0) > 5*time.Second {
			return nil, fmt.Errorf("socket never appeared: %w", err)
		}
		time.Sleep(20 * time.Microsecond)
	}
	dSock := time.Since(t0)
	cl := firecracker.NewClient(sock)
	defer cl.Close()
	smt := false
	ro := false
	calls := []func() error{
		func() error {
			return cl.PutMachineConfig(ctx, firecracker.MachineConfiguration{VcpuCount: vcpus, MemSizeMib: memMiB, Smt: &smt})
		},
		func() error {
			return cl.PutBootSource(ctx, firecracker.BootSource{KernelImagePath: img.kernel, BootArgs: bootArgs})
		},
		func() error {
			return cl.PutDrive(ctx, firecracker.Drive{DriveID: "rootfs", PathOnHost: img.rootfs, IsRootDevice: true, IsReadOnly: &ro})
		},
		func() error {
			return cl.PutVsock(ctx, firecracker.Vsock{GuestCID: guestCID, UdsPath: filepath.Join(dir, "v.sock")})
		},
		func() error { return cl.StartInstance(ctx) },
	}
	out := []time.Duration{dExec, dSock, lateness(dSock - dExec)}
	var sum time.Duration
	for _, c := range calls {
		t := time.Now()
		if err := c(); err != nil {
			return nil, err
		}
		d := time.Since(t)
		sum += d
		out = append(out, d)
	}
	return append(out, sum), nil
}

// lateness returns how long after ready petty's waitForSocket would first
// poll successfully: it polls at once, then after 100µs, 200µs, ... doubling
// up to 5ms between attempts (dial costs ignored).
func lateness(ready time.Duration) time.Duration {
	var at time.Duration
	delay := 100 * time.Microsecond
	for at < ready {
		at += delay
		delay = min(delay*2, 5*time.Millisecond)
	}
	return at - ready
}

// watchedStart runs m.Start while another goroutine polls (every 20µs) for
// the API socket file in m's run directory. It returns Start's duration and
// the time from the socket file's appearance to Start's return: that is
// waitForSocket's lateness plus the five API calls.
func watchedStart(ctx context.Context, m *vm.Machine) (total, afterSock time.Duration, err error) {
	sock := filepath.Join(m.RunDir(), "firecracker.sock")
	seen := make(chan time.Time, 1)
	stop := make(chan struct{})
	go func() {
		for {
			if _, err := os.Stat(sock); err == nil {
				seen <- time.Now()
				return
			}
			select {
			case <-stop:
				seen <- time.Time{}
				return
			case <-time.After(20 * time.Microsecond):
			}
		}
	}()
	t := time.Now()
	err = m.Start(ctx)
	end := time.Now()
	close(stop)
	at := <-seen
	if err == nil && at.IsZero() {
		err = fmt.Errorf("socket %s never seen", sock)
	}
	return end.Sub(t), end.Sub(at), err
}
