package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/image"
)

func (a *app) imageCommand() *cobra.Command {
	img := &cobra.Command{
		Use:   "image",
		Short: "Manage petty's default guest image",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	var opts image.Options
	build := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build the default guest image (or find it in the cache) and print its paths",
		Long: `Build petty's default guest image from the host's Debian kernel
(linux-image-cloud-amd64), static busybox (busybox-static) and petty-agent, or
find it in the cache, and print the paths of its files.

With --kernel-source the kernel is instead compiled from Debian's kernel source
(linux-source-6.1): tinyconfig plus virtio (mmio with command-line devices, as
Firecracker needs, and pci), vsock, ext4 and serial built in, no modules. The
first build takes about 9 minutes on 2 cores (packages: linux-source-6.1
build-essential bc bison flex libelf-dev); the kernel is cached after that.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog := newProgress(a.stderr, a.verbose)
			res, err := buildDefaultImage(cmd.Context(), opts, prog, a.logger())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "kernel: %s\ninitrd: %s\n", res.Kernel, res.Initrd)
			if res.RootFS != "" {
				fmt.Fprintf(a.stdout, "rootfs: %s\n", res.RootFS)
			}
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&opts.KernelPath, "kernel", "", "host kernel to boot, a bzImage (default: the newest /boot/vmlinuz-*-cloud-amd64)")
	f.BoolVar(&opts.RootFS, "rootfs", false, "also build the ext4 root file system (needs mkfs.ext4, package e2fsprogs)")
	f.BoolVar(&opts.KernelSource, "kernel-source", false, "boot a minimal microVM kernel compiled from Debian's linux-source-6.1 (Firecracker-ready, no modules; ≈9 min on 2 cores the first time, then cached)")
	f.StringVar(&opts.KernelSourceTarball, "kernel-source-tarball", "", "kernel source for --kernel-source (default /usr/src/linux-source-6.1.tar.xz)")
	f.StringVar(&opts.CacheDir, "cache", "", "cache directory (default $XDG_CACHE_HOME/petty or ~/.cache/petty)")
	f.StringVar(&opts.AgentPath, "agent", "", "static petty-agent to put in the image (default: next to petty, else in $PATH)")
	build.MarkFlagsMutuallyExclusive("kernel", "kernel-source")
	img.AddCommand(build)
	return img
}
