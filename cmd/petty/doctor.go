package main

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/qemu"
	"github.com/pettyvm/petty/vm"
)

// check is one line of petty doctor.
type check struct {
	name   string
	ok     bool
	detail string
	fix    string // what to do when !ok
	// optional marks a part only some features need.
	optional bool
}

func (a *app) doctorCommand() *cobra.Command {
	var firecrackerBin string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Show what this host can run, and how to fix what is missing",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			checks := defaultDoctorHost(firecrackerBin).checks()
			printChecks(a.stdout, checks)
			s, err := vm.SelectVMM(vm.AutoVMM, firecrackerBin)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "\n--vmm auto picks %s: %s.\n", describe(s.VMM, s.Accel), s.Reason)
			return nil
		},
	}
	cmd.Flags().StringVar(&firecrackerBin, "firecracker-bin", "", "firecracker executable to check (default $"+vm.FirecrackerBinEnv+", then $PATH)")
	return cmd
}

func printChecks(w io.Writer, checks []check) {
	for _, c := range checks {
		mark := "ok"
		switch {
		case !c.ok && c.optional:
			mark = "warn"
		case !c.ok:
			mark = "MISSING"
		}
		fmt.Fprintf(w, "%-8s %-16s %s\n", mark, c.name, c.detail)
		if !c.ok && c.fix != "" {
			fmt.Fprintf(w, "%-8s %-16s fix: %s\n", "", "", c.fix)
		}
	}
}

// Fixes petty doctor gives for a missing part.
const (
	firecrackerFix = vm.FirecrackerFix
	qemuFix        = "apt-get install qemu-system-x86"
	vhostVsockFix  = "modprobe vhost_vsock"
	tunFix         = "modprobe tun"
	busyboxFix     = "apt-get install busybox-static"
	kernelFix      = "apt-get install linux-image-cloud-amd64 (or pass --kernel)"
	cacheFix       = "petty image build (petty run builds it on first use)"
	fcKernelFix    = kernelSourceBuildCommand + " (≈9 min on 2 cores; petty run never compiles it)"
)

// Names of petty doctor's checks.
const (
	checkKVM         = "KVM"
	checkFirecracker = "firecracker"
	checkQEMU        = "qemu"
	checkQEMUSeccomp = "qemu seccomp"
	checkVhostVsock  = "vhost-vsock"
	checkTun         = "tun"
	checkBusybox     = "busybox-static"
	checkKernel      = "guest kernel"
	checkAgent       = agentBinary
	checkCache       = "image cache"
	checkFCKernel    = "fc guest kernel"
)

// doctorHost is where petty doctor looks; tests point it elsewhere.
// Executables (firecracker, qemu, petty-agent) are looked for as a run
// does: $PATH and the environment.
type doctorHost struct {
	firecrackerBin string // --firecracker-bin
	busybox        string // the default image's busybox
	kernelGlob     string // the default image's kernels
	tun            string // /dev/net/tun
	// kernelSourceTarball is the Firecracker kernel's source; "" for
	// image's default.
	kernelSourceTarball string
}

// defaultDoctorHost is the host as a run sees it.
func defaultDoctorHost(firecrackerBin string) doctorHost {
	return doctorHost{
		firecrackerBin: firecrackerBin,
		busybox:        "/bin/busybox",
		kernelGlob:     "/boot/vmlinuz-*-cloud-amd64",
		tun:            "/dev/net/tun",
	}
}

// checks diagnoses h, one check per part, in a fixed order.
func (h doctorHost) checks() []check {
	var cs []check

	kvmOK, why := qemu.KVMUsable()
	k := check{name: checkKVM, ok: kvmOK, detail: "/dev/kvm is usable"}
	if !kvmOK {
		k.detail = why
		k.fix = kvmFix()
		k.optional = true // QEMU/TCG still works
	}
	cs = append(cs, k)

	fc := check{name: checkFirecracker, optional: true, fix: firecrackerFix}
	if p, _ := vm.FindFirecracker(h.firecrackerBin); p != "" {
		v, err := commandVersion(p, "--version")
		fc.ok = err == nil
		fc.detail = p + ": " + v
		if err != nil {
			fc.detail = fmt.Sprintf("%s: --version failed: %v", p, err)
		}
	} else {
		fc.detail = "not found"
	}
	cs = append(cs, fc)

	q := check{name: checkQEMU, fix: qemuFix}
	if p, err := qemu.FindBinary(); err != nil {
		q.detail = qemu.BinaryName + " not found"
	} else if v, err := qemu.Version(p); err != nil {
		q.detail = err.Error()
	} else {
		q.ok, q.detail = true, p+": "+v
		sb := check{name: checkQEMUSeccomp, optional: true, ok: qemu.SandboxSupported(p),
			fix: "use a QEMU built with seccomp (Debian's qemu-system-x86 is)"}
		sb.detail = onOff(sb.ok, "-sandbox "+qemu.SandboxOptions, p+" has no usable -sandbox: QEMU runs without its seccomp filter")
		cs = append(cs, q, sb)
	}
	if !q.ok {
		cs = append(cs, q)
	}

	cs = append(cs,
		check{name: checkVhostVsock, ok: qemu.VhostVsockAvailable(), optional: true,
			detail: onOff(qemu.VhostVsockAvailable(), "/dev/vhost-vsock is usable", "/dev/vhost-vsock is not usable (petty's QEMU VMs use virtio-serial instead)"),
			fix:    vhostVsockFix},
		charDevCheck(checkTun, h.tun, "needed only for --tap", tunFix),
		busyboxCheck(h.busybox),
		kernelCheck(h.kernelGlob),
		agentCheck(),
		cacheCheck(),
		fcKernelCheck(h.kernelSourceTarball),
	)
	return cs
}

// fcKernelCheck reports whether the kernel a run under Firecracker boots
// (compiled from source) is in the image cache.
func fcKernelCheck(tarball string) check {
	c := check{name: checkFCKernel, optional: true, fix: fcKernelFix}
	p, err := image.CachedSourceKernel(image.Options{KernelSourceTarball: tarball})
	if err != nil {
		c.detail = "not compiled (Firecracker runs without --kernel need it)"
		return c
	}
	c.ok, c.detail = true, p
	return c
}

// kvmFix says how to make /dev/kvm usable.
func kvmFix() string {
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil {
		return "this host's KVM is nested PVM: run petty on bare metal or in a VM with nested virtualization for Firecracker; QEMU/TCG works here meanwhile"
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "enable VT-x/AMD-V in the firmware and modprobe kvm_intel (or kvm_amd)"
	}
	return "sudo usermod -aG kvm $USER, then log in again"
}

func onOff(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func charDevCheck(name, path, why, fix string) check {
	c := check{name: name, optional: true, fix: fix}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		c.detail = fmt.Sprintf("%s: %v (%s)", path, err, why)
	case fi.Mode()&os.ModeCharDevice == 0:
		c.detail = path + " is not a character device (" + why + ")"
	default:
		c.ok, c.detail = true, path+" present"
	}
	return c
}

func busyboxCheck(path string) check {
	c := check{name: checkBusybox, fix: busyboxFix}
	f, err := elf.Open(path)
	if err != nil {
		c.detail = fmt.Sprintf("%s: %v (the default guest image needs it)", path, err)
		return c
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			c.detail = path + " is dynamically linked (the guest needs the static one)"
			return c
		}
	}
	c.ok, c.detail = true, path+" is static"
	return c
}

func kernelCheck(glob string) check {
	c := check{name: checkKernel, fix: kernelFix}
	m, _ := filepath.Glob(glob)
	if len(m) == 0 {
		c.detail = "no " + glob + " for the default guest image"
		return c
	}
	c.ok, c.detail = true, m[len(m)-1]
	return c
}

func agentCheck() check {
	c := check{name: checkAgent}
	p, err := findAgent()
	if err != nil {
		c.detail = "not found next to petty nor in $PATH (the default guest image needs it)"
		next := ""
		if exe, err := os.Executable(); err == nil {
			next = filepath.Join(filepath.Dir(exe), agentBinary)
		}
		c.fix = agentBuildHint(next)
		return c
	}
	c.ok, c.detail = true, p
	return c
}

func cacheCheck() check {
	c := check{name: checkCache, optional: true}
	dir, err := os.UserCacheDir()
	if err != nil {
		c.detail = "no cache directory: " + err.Error()
		c.fix = "set $XDG_CACHE_HOME"
		return c
	}
	dir = filepath.Join(dir, "petty")
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "initrd.img")); err == nil && e.IsDir() {
			n++
		}
	}
	c.ok = n > 0
	c.detail = fmt.Sprintf("%s: %d image(s)", dir, n)
	c.fix = cacheFix
	return c
}

// commandVersion runs bin with args and returns the first line it printed.
func commandVersion(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, nil
}
