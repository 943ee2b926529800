package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

func (a *app) runCommand() *cobra.Command {
	var (
		f            vmFlags
		xf           execFlags
		detach       bool
		name         string
		consoleLimit string
		restore      string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] [--] CMD [ARGS...]",
		Short: "Boot a VM, run CMD in it, and destroy it",
		Long: `Boot a microVM, run CMD in it through the guest agent with stdin, stdout and
stderr streamed, destroy the VM, and exit with CMD's exit code (128+N when a
signal N killed it). SIGINT (Ctrl-C), SIGTERM, SIGHUP and SIGQUIT destroy the
VM, and petty exits with 128 + the signal's number (130, 143, 129, 131).

petty boots the image --image names (default "default": Debian, built once
into the image store on first use; it needs petty-agent next to petty or in
$PATH). The image's root file system is shared read-only by every VM; each
VM writes to its own layer above it (--disk-size, discarded with the VM).
--image minimal is the busybox initramfs image; --kernel boots your own
kernel instead. --env, --workdir, --user and --timeout shape the command
(exit code 124 when --timeout killed it). With --detach, petty boots
the VM, prints its name and leaves it running: see petty exec, logs, ls,
stop, rm. With --restore DIR, petty starts the VM from a snapshot taken by
petty snapshot instead of booting it (milliseconds instead of seconds); the
snapshot fixes the image, memory, vCPUs and disks.`,
		Example: `  petty run -- uname -a
  echo hello | petty run -- cat
  petty run --vmm qemu --memory 512 -- sh -c 'free -m'
  petty run --user user --workdir /tmp --env DEBUG=1 --timeout 30s -- python3 -c 'print(1)'
  petty run --image minimal -- uname -r
  petty run --detach --name dev
  petty run --restore ./base.snap -- python3 -V
  petty run --restore ./base.snap --detach --name clone1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.check(); err != nil {
				return err
			}
			if restore != "" {
				if err := checkRestoreFlags(cmd.Flags()); err != nil {
					return err
				}
				abs, err := filepath.Abs(restore)
				if err != nil {
					return err
				}
				restore = abs
			}
			if detach {
				if len(args) > 0 {
					return usagef("--detach takes no command: run one later with 'petty exec NAME -- CMD'")
				}
				limit, err := parseSize(consoleLimit)
				if err != nil || limit < minConsoleLimit {
					return usagef("--console-limit %q: want a size of at least 8KiB, e.g. 8MiB", consoleLimit)
				}
				if xf.changed(cmd.Flags()) {
					return usagef("--env, --workdir, --user and --timeout are for a command: pass them to 'petty exec'")
				}
				return a.runDetached(cmd.Context(), &f, name, limit, restore)
			}
			if name != "" {
				return usagef("--name is only for --detach")
			}
			if cmd.Flags().Changed("console-limit") {
				return usagef("--console-limit is only for --detach")
			}
			if len(args) == 0 {
				return usagef("missing the command to run")
			}
			if err := xf.check(); err != nil {
				return err
			}
			if restore != "" {
				return a.runRestored(cmd.Context(), &f, restore, xf.cmd(args))
			}
			return a.runOnce(cmd.Context(), &f, xf.cmd(args))
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // everything after CMD belongs to CMD
	f.register(fs)
	xf.register(fs)
	fs.BoolVar(&detach, "detach", false, "boot the VM, print its name and leave it running")
	fs.StringVar(&name, "name", "", "name of a detached VM (default: generated)")
	fs.StringVar(&restore, "restore", "", "start the VM from the snapshot in this directory (see petty snapshot) instead of booting it")
	fs.StringVar(&consoleLimit, "console-limit", "8MiB", "cap of a detached VM's console log on disk (rotated; see petty logs)")
	return cmd
}

// runOnce is petty run without --detach.
func (a *app) runOnce(ctx context.Context, f *vmFlags, gc *agent.Cmd) (retErr error) {
	ctx, caught, stop := interruptible(ctx)
	defer stop()
	defer whenInterrupted(caught, &retErr)
	a.reclaim()

	prog := newProgress(a.stderr, a.verbose)
	defer prog.done()
	cfg, choice, scratch, err := a.prepare(ctx, f, prog)
	if err != nil {
		return err
	}
	m, client, err := a.boot(ctx, cfg, choice, f.bootTimeout, prog)
	image.RemoveScratchDisk(scratch) // the VMM holds it open
	if err != nil {
		return err
	}
	defer func() {
		_ = client.Close()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.stopTimeout)
		defer cancel()
		if err := m.Destroy(dctx); err != nil && retErr == nil {
			retErr = fmt.Errorf("destroying the VM: %w", err)
		}
	}()
	return a.runInGuest(ctx, client, gc)
}

// prepare picks the VMM, resolves the guest image and builds the Config.
// For an image with a root file system it also creates the VM's scratch
// disk and returns its path: the caller unlinks it once the VM booted
// (or failed to).
func (a *app) prepare(ctx context.Context, f *vmFlags, prog *progress) (_ vm.Config, _ vmmChoice, scratch string, retErr error) {
	log := a.logger()
	choice, err := chooseVMM(f.vmm, f.firecrackerBin) // fails fast, before any image work
	if err != nil {
		return vm.Config{}, choice, "", err
	}
	log.Debug("vmm chosen", "vmm", choice.vmm, "why", choice.reason)
	img, err := f.resolveImage(ctx, choice.vmm, prog, log)
	if err != nil {
		return vm.Config{}, choice, "", err
	}
	if img.base != "" && choice.vmm == vm.Firecracker && f.vmm == "auto" {
		// An image's kernel is Debian's, which does not read the devices
		// Firecracker announces on the kernel command line: QEMU boots it.
		if choice, err = chooseVMM(string(vm.QEMU), ""); err != nil {
			return vm.Config{}, choice, "", fmt.Errorf("this image needs QEMU (Firecracker cannot boot its Debian kernel): %w", err)
		}
		log.Debug("vmm chosen for the image", "vmm", choice.vmm, "why", choice.reason)
	}
	cfg, err := f.config(choice.vmm, img.kernel, img.initrd, img.rootfs)
	if err != nil {
		return vm.Config{}, choice, "", err
	}
	if img.base != "" {
		size, _ := parseSize(f.diskSize) // checked by vmFlags.check
		if scratch, err = addOverlayRoot(ctx, &cfg, img, a.runRoot(), size, f.hostname); err != nil {
			return vm.Config{}, choice, "", err
		}
		defer func() {
			if retErr != nil {
				image.RemoveScratchDisk(scratch)
			}
		}()
	}
	if choice.vmm == vm.QEMU {
		// The agent's channel (vhost-vsock when the host has it, else
		// virtio-serial) is vm's choice, not the CLI's.
		cfg.Accel = choice.accel
	}
	cfg.RunDir = a.runDir
	cfg.Logger = log
	if a.verbose {
		cfg.Console = newEscaper(a.stderr) // guest bytes: no terminal controls
	}
	if err := cfg.Validate(); err != nil {
		return vm.Config{}, choice, "", configError(err)
	}
	return cfg, choice, scratch, nil
}

// boot creates the VM and waits for its agent, within timeout.
func (a *app) boot(ctx context.Context, cfg vm.Config, choice vmmChoice, timeout time.Duration, prog *progress) (*vm.Machine, *agent.Client, error) {
	prog.step("booting VM (%s)", describe(choice.vmm, choice.accel))
	defer prog.done()
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := vm.Create(bctx, cfg)
	if err != nil {
		return nil, nil, bootError(ctx, err, timeout, nil)
	}
	c, err := m.Agent(bctx)
	if err != nil {
		tail := m.ConsoleTail()
		_ = m.Kill()
		_ = m.Destroy(context.WithoutCancel(ctx))
		if a.verbose {
			tail = nil // already on stderr
		}
		return nil, nil, bootError(ctx, err, timeout, tail)
	}
	return m, c, nil
}

// bootError explains a failed boot: an interrupt, the boot timeout (with the
// console's tail), or the VMM's own failure (vm.ExitError carries its tail).
func bootError(ctx context.Context, err error, timeout time.Duration, tail []byte) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	var extra string
	var ee *vm.ExitError
	if t := strings.TrimSpace(string(lastBytes(tail, 2048))); t != "" && !errors.As(err, &ee) {
		extra = "\n--- console tail ---\n" + t
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the VM did not boot, or its agent did not answer, within --boot-timeout %v: %w%s", timeout, err, extra)
	}
	return fmt.Errorf("booting the VM: %w%s", err, extra)
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// configError turns vm's validation errors into one list a person can act on.
func configError(err error) error {
	return fmt.Errorf("bad VM configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
}
