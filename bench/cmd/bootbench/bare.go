package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/vm"
)

// marker is what the bare /init prints once userspace runs.
const marker = "BOOTBENCH-READY"

// bareBooter boots the trivial initramfs with qemu-system-x86_64 directly.
type bareBooter struct {
	accel, kernel, initrd, dir, qemuBin string
	n                                   int
}

// cmdline is petty's kernel command line for this accelerator: the default
// boot args plus what the QEMU backend appends (see vm/qemu_args.go),
// without petty.listen= (the bare /init has no agent).
func cmdline(accel string) string {
	args := []string{vm.DefaultBootArgs}
	if accel == qemu.AccelTCG {
		if khz := qemu.HostTSCkHz(); khz > 0 {
			args = append(args, "tsc_early_khz="+strconv.Itoa(khz))
		}
		args = append(args, "no_timer_check")
	}
	return strings.Join(append(args, "cryptomgr.notests", "quiet"), " ")
}

// boot returns the time from spawning QEMU until the marker is on its serial
// output. QEMU is then left to power off (poweroff -f, -no-reboot) and reaped.
func (b *bareBooter) boot(ctx context.Context) (time.Duration, error) {
	b.n++
	run := filepath.Join(b.dir, "bare"+strconv.Itoa(b.n))
	// The same Spec petty builds for an initramfs guest without vsock: the
	// same machine, accelerator, CPU model and devices (virtio-serial agent
	// port and QMP socket included, though nothing connects to them).
	spec := qemu.Spec{
		Name: "bootbench", Accel: b.accel, VCPUs: 1, MemoryMiB: 256,
		Kernel: b.kernel, Initrd: b.initrd, Cmdline: cmdline(b.accel),
		AgentSocket: run + "-agent.sock", QMPSocket: run + "-qmp.sock",
	}
	cmd := exec.Command(b.qemuBin, spec.Args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	seen := make(chan time.Duration, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.Contains(s.Text(), marker) {
				seen <- time.Since(t)
				break
			}
		}
		for s.Scan() { // drain until QEMU exits
		}
		close(seen)
	}()
	waited := make(chan error, 1)
	timer := time.NewTimer(2 * time.Minute)
	defer timer.Stop()
	var d time.Duration
	var ok bool
	select {
	case d, ok = <-seen:
	case <-timer.C:
	case <-ctx.Done():
	}
	if !ok {
		_ = cmd.Process.Kill()
	}
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-waited
	}
	if !ok {
		return 0, errors.Join(errors.New("marker never seen"), fmt.Errorf("qemu stderr: %s", stderr.String()))
	}
	return d, nil
}
