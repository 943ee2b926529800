package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/image"
)

func (a *app) imageCommand() *cobra.Command {
	img := &cobra.Command{
		Use:   "image",
		Short: "Build, list and remove guest images",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	img.AddCommand(a.imageBuildCommand(), a.imageLsCommand(), a.imageRmCommand())
	return img
}

// imageBuildFlags are the flags of petty image build.
type imageBuildFlags struct {
	spec   image.BuildSpec
	cache  string
	rootfs bool // legacy: the small busybox ext4 of image.Build
	legacy image.Options
}

func (a *app) imageBuildCommand() *cobra.Command {
	var fl imageBuildFlags
	build := &cobra.Command{
		Use:   "build [flags]",
		Short: "Build a guest image into the image store (or find it there) and print its paths",
		Long: `Build a guest image into petty's image store, or find it there when it was
built from the same inputs (a cache hit), and print its name and paths.

Without flags it builds the image "default": Debian, the release the host's apt
sources name, from the mirror they name (--mirror and --release override), with
` + defaultPackagesText() + `
and a user "user" (uid 1000) beside root, built with mmdebstrap (package
mmdebstrap; about 3 minutes and 600 MB). The archive's state is read only with
--refresh: without it an image built from the same inputs is reused.

  --packages a,b --name NAME   the default packages plus a and b
  --from-tar FILE --name NAME  a root file system tarball (docker export; plain,
                               gzip, xz or zstd) with /bin/sh; petty adds only
                               its agent (/usr/local/sbin/petty-agent)
  --minimal                    the busybox initramfs image "minimal" (no root
                               file system)

Every image has the host's Debian kernel (linux-image-cloud-amd64) and an
initramfs whose /init is petty-agent. With --kernel-source the kernel is
instead compiled from Debian's kernel source (linux-source-6.1), about 9
minutes on 2 cores the first time, then cached.

--rootfs keeps the old behaviour: the kernel, initramfs and small busybox ext4
root file system of petty run's built-in image, outside the store.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog := newProgress(a.stderr, a.verbose)
			if fl.rootfs {
				fl.legacy.RootFS = true
				fl.legacy.CacheDir = fl.cache
				fl.legacy.AgentPath = fl.spec.AgentPath
				fl.legacy.KernelPath = fl.spec.KernelPath
				fl.legacy.KernelSource = fl.spec.KernelSource
				fl.legacy.KernelSourceTarball = fl.spec.KernelSourceTarball
				res, err := buildDefaultImage(cmd.Context(), fl.legacy, prog.forBuild(), a.logger())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "kernel: %s\ninitrd: %s\nrootfs: %s\n", res.Kernel, res.Initrd, res.RootFS)
				return nil
			}
			st, err := openStore(fl.cache)
			if err != nil {
				return err
			}
			res, err := buildStoreImage(cmd.Context(), st, fl.spec, prog, a.logger())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "name: %s\nkernel: %s\ninitrd: %s\n", res.Name, res.Kernel, res.Initrd)
			if res.RootFS != "" {
				fmt.Fprintf(a.stdout, "rootfs: %s\n", res.RootFS)
			}
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&fl.spec.Name, "name", "", `the image's name (default "default", or "minimal" with --minimal; required with --packages and --from-tar)`)
	f.StringSliceVar(&fl.spec.Packages, "packages", nil, "Debian packages to install beyond the default set (comma-separated)")
	f.StringVar(&fl.spec.FromTar, "from-tar", "", "build the image from this root file system tarball (what docker export writes)")
	f.BoolVar(&fl.spec.Minimal, "minimal", false, `build the busybox initramfs image "minimal" (no root file system)`)
	f.StringVar(&fl.spec.Mirror, "mirror", "", "Debian archive URL (default: the first Debian main archive of the host's apt sources)")
	f.StringVar(&fl.spec.Release, "release", "", "Debian release, e.g. bookworm (default: the one the host's apt sources name)")
	f.BoolVar(&fl.spec.Refresh, "refresh", false, "check the Debian archive's state and rebuild when it changed")
	f.StringVar(&fl.spec.KernelPath, "kernel", "", "host kernel to boot, a bzImage (default: the newest /boot/vmlinuz-*-cloud-amd64)")
	f.BoolVar(&fl.rootfs, "rootfs", false, "build petty run's built-in image with its small busybox ext4 root file system, outside the store (needs mkfs.ext4, package e2fsprogs)")
	f.BoolVar(&fl.spec.KernelSource, "kernel-source", false, "boot a minimal microVM kernel compiled from Debian's linux-source-6.1 (Firecracker-ready, no modules; ≈9 min on 2 cores the first time, then cached)")
	f.StringVar(&fl.spec.KernelSourceTarball, "kernel-source-tarball", "", "kernel source for --kernel-source (default /usr/src/linux-source-6.1.tar.xz)")
	f.StringVar(&fl.cache, "cache", "", "cache directory; images are in its images/ (default $XDG_CACHE_HOME/petty or ~/.cache/petty)")
	f.StringVar(&fl.spec.AgentPath, "agent", "", "static petty-agent to put in the image (default: next to petty, else in $PATH)")
	build.MarkFlagsMutuallyExclusive("kernel", "kernel-source")
	for _, pair := range [][2]string{
		{"minimal", "from-tar"}, {"minimal", "packages"}, {"from-tar", "packages"},
		{"rootfs", "minimal"}, {"rootfs", "from-tar"}, {"rootfs", "packages"}, {"rootfs", "name"},
	} {
		build.MarkFlagsMutuallyExclusive(pair[0], pair[1])
	}
	return build
}
