package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// storeFormat changes whenever Store.Build's output changes for the same
// inputs, so that older images are rebuilt.
const storeFormat = "petty-store-v1"

// AgentRootFSPath is where the agent lives in the root file system of
// every store image that has one.
const AgentRootFSPath = "/" + agentRootFSPath

// agentRootFSPath is AgentRootFSPath relative to the root.
const agentRootFSPath = "usr/local/sbin/petty-agent"

// ErrNeedName is returned when a build that is neither the default nor the
// minimal image has no BuildSpec.Name.
var ErrNeedName = errors.New("image: give the image a name (--name): only the default set of packages makes the image " + DefaultImage)

// ErrSpec is returned (wrapped) for contradictory BuildSpec fields.
var ErrSpec = errors.New("image: invalid build")

// BuildSpec says which image Store.Build builds. With neither FromTar nor
// Minimal it is a Debian image: DefaultPackages plus Packages.
type BuildSpec struct {
	// Name is the image's name in the store; default DefaultImage, or
	// MinimalImage with Minimal. Required with FromTar or Packages.
	Name string
	// Packages are Debian packages to install beyond DefaultPackages.
	Packages []string
	// FromTar is a root file system tarball (plain, gzip, xz or zstd),
	// e.g. what `docker export` writes; it must have /bin/sh. Petty adds
	// its agent and nothing else.
	FromTar string
	// Minimal builds the busybox initramfs image (no root file system).
	Minimal bool
	// Mirror is the Debian archive URL; default the first Debian main
	// archive of the host's apt sources.
	Mirror string
	// Release is the Debian suite; default the one the host's apt sources
	// name with that archive.
	Release string
	// Refresh makes a Debian build check the archive's state (its Release
	// file's Date) and rebuild when it changed. Without it an image built
	// from the same inputs is reused whatever the archive's state.
	Refresh bool
	// AgentPath is the static petty-agent. Required.
	AgentPath string
	// KernelPath, KernelSource, KernelSourceTarball and NoCompile choose
	// the kernel as the Options fields of the same names do.
	KernelPath          string
	KernelSource        bool
	KernelSourceTarball string
	NoCompile           bool
	// Progress, if not nil, is called at the start of each step
	// ("resolve inputs", "debian: ..." lines of mmdebstrap, "extract
	// kernel", "initramfs", "unpack root file system", "rootfs", "store",
	// or "cached").
	Progress func(step string)
	// Logger receives debug logs (mmdebstrap's output among them); nil
	// discards them.
	Logger *slog.Logger
}

// origin returns the kind of image spec builds.
func (spec *BuildSpec) origin() string {
	switch {
	case spec.Minimal:
		return OriginMinimal
	case spec.FromTar != "":
		return OriginTar
	}
	return OriginDebian
}

// check fills spec's name and rejects contradictions.
func (spec *BuildSpec) check() error {
	if spec.Minimal && spec.FromTar != "" {
		return fmt.Errorf("%w: --minimal and --from-tar exclude each other", ErrSpec)
	}
	if (spec.Minimal || spec.FromTar != "") && (len(spec.Packages) > 0 || spec.Mirror != "" || spec.Release != "") {
		return fmt.Errorf("%w: --packages, --mirror and --release are for Debian images, not --minimal or --from-tar", ErrSpec)
	}
	for _, p := range spec.Packages {
		if p == "" || strings.ContainsAny(p, ", \t\n") || strings.HasPrefix(p, "-") {
			return fmt.Errorf("%w: package name %q", ErrSpec, p)
		}
	}
	if spec.Name == "" {
		switch {
		case spec.Minimal:
			spec.Name = MinimalImage
		case spec.FromTar == "" && len(spec.Packages) == 0:
			spec.Name = DefaultImage
		default:
			return ErrNeedName
		}
	}
	return CheckName(spec.Name)
}

// Build builds the image spec describes into the store, or finds it there:
// when the image of that name was built from the same inputs (kernel,
// modules, agent, busybox, e2fsprogs, release, mirror, packages, tarball
// contents, builder version) it is returned at once with Cached set. The
// image is built in a temporary directory inside the store and renamed
// into place at the end, replacing an older image of that name: a failed
// build leaves the store as it was. Builds of one name are serialised
// across processes by a lock file.
func (s *Store) Build(ctx context.Context, spec BuildSpec) (*Stored, error) {
	if err := spec.check(); err != nil {
		return nil, err
	}
	log := spec.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	progress := func(step string) {
		if spec.Progress != nil {
			spec.Progress(step)
		} else {
			log.Debug("image: step", "image", spec.Name, "step", step)
		}
	}
	origin := spec.origin()

	progress("resolve inputs")
	o := Options{
		KernelPath: spec.KernelPath, KernelSource: spec.KernelSource,
		KernelSourceTarball: spec.KernelSourceTarball, NoCompile: spec.NoCompile,
		AgentPath: spec.AgentPath, CacheDir: filepath.Dir(s.Dir), Logger: log,
		rootModules: origin != OriginMinimal,
	}
	if o.KernelSource {
		var err error
		if o.KernelPath, err = sourceKernel(ctx, &o, progress); err != nil {
			return nil, err
		}
	}
	in, err := resolveInputs(&o)
	if err != nil {
		return nil, err
	}
	b := &storeBuild{store: s, spec: &spec, origin: origin, in: in, opts: &o, log: log, progress: progress}
	if err := b.resolve(ctx); err != nil {
		return nil, err
	}

	unlock, err := s.lock(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if old, err := s.read(spec.Name); err == nil && old.InputsKey == b.inputsKey {
		if origin != OriginDebian || !spec.Refresh {
			return b.hit(old), nil
		}
	}
	if origin == OriginDebian {
		b.archiveDate(ctx)
	}
	if old, err := s.read(spec.Name); err == nil && old.Key == b.key {
		return b.hit(old), nil
	}
	return b.build(ctx)
}

// storeBuild is one Store.Build in progress.
type storeBuild struct {
	store    *Store
	spec     *BuildSpec
	origin   string
	in       *inputs
	opts     *Options
	log      *slog.Logger
	progress func(string)

	tools     ext4Tools
	release   string
	mirror    string
	packages  []string
	tarSum    string
	inputsKey string
	key       string
	date      string // archive Release Date, RFC 1123
	epoch     int64  // SOURCE_DATE_EPOCH of a Debian image
}

// resolve reads the inputs beyond the kernel's and computes the keys.
func (b *storeBuild) resolve(ctx context.Context) error {
	var err error
	if b.origin != OriginMinimal {
		if b.tools, err = findExt4Tools(); err != nil {
			return err
		}
	}
	h := sha256.New()
	field := func(name, value string) { fmt.Fprintf(h, "%s %d %s\n", name, len(value), value) }
	field("store-format", storeFormat)
	field("origin", b.origin)
	field("kernel-and-initramfs", b.in.key())
	switch b.origin {
	case OriginDebian:
		if b.spec.Mirror == "" || b.spec.Release == "" {
			src, err := HostDebianSource()
			if err != nil {
				return err
			}
			b.mirror, b.release = src.URI, src.Suite
		}
		if b.spec.Mirror != "" {
			b.mirror = b.spec.Mirror
		}
		if b.spec.Release != "" {
			b.release = b.spec.Release
		}
		b.packages = packageList(b.spec.Packages)
		field("release", b.release)
		field("mirror", b.mirror)
		field("packages", strings.Join(b.packages, ","))
		field("mmdebstrap", strings.Join(mmdebstrapArgs(b.release, b.mirror, b.packages, "OUT"), "\x00"))
	case OriginTar:
		if b.tarSum, err = fileSum(b.spec.FromTar); err != nil {
			return fmt.Errorf("image: --from-tar: %w", err)
		}
		field("tar", b.tarSum)
	}
	if b.origin != OriginMinimal {
		field("e2fsprogs", b.tools.sum)
		field("mke2fs.conf", mke2fsConf)
		field("agent-path", agentRootFSPath)
	}
	b.inputsKey = hex.EncodeToString(h.Sum(nil))
	b.key = b.inputsKey
	return ctx.Err()
}

// archiveDate fetches the Debian archive's Release Date: the
// SOURCE_DATE_EPOCH of the image and part of its key. When it cannot be
// fetched the image is built with fixedSourceDateEpoch.
func (b *storeBuild) archiveDate(ctx context.Context) {
	b.epoch = fixedSourceDateEpoch
	d, err := archiveDate(ctx, b.mirror, b.release)
	if err != nil {
		b.log.Warn("image: cannot fetch the archive's Release date; using a fixed SOURCE_DATE_EPOCH", "err", err)
		return
	}
	b.date, b.epoch = d.Format(time.RFC1123Z), d.Unix()
	sum := sha256.Sum256([]byte(b.inputsKey + "\x00archive-date " + b.date))
	b.key = hex.EncodeToString(sum[:])
}

// hit reports a cache hit on old.
func (b *storeBuild) hit(old *Stored) *Stored {
	b.progress("cached")
	b.log.Debug("image: cache hit", "image", old.Name, "dir", old.Dir)
	old.Cached = true
	return old
}

// build builds the image into a temporary directory of the store and
// moves it into place.
func (b *storeBuild) build(ctx context.Context) (*Stored, error) {
	s, name := b.store, b.spec.Name
	tmp, err := os.MkdirTemp(s.Dir, storeBuildPrefix+name+"-")
	if err != nil {
		return nil, fmt.Errorf("image: store: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up any failure

	m := Manifest{
		Format: manifestFormat, Name: name, Origin: b.origin, Key: b.key, InputsKey: b.inputsKey,
		Release: b.release, Mirror: b.mirror, Packages: b.packages, ArchiveDate: b.date,
		Tar: b.tarSum, Kernel: storeKernelFile, Initrd: storeInitrdFile,
	}

	b.progress("extract kernel")
	vmlinux, err := kernelELF(b.opts.KernelSource, b.in.kernel)
	if err != nil {
		return nil, fmt.Errorf("image: %s: %w", b.in.kernelPath, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, storeKernelFile), vmlinux, 0o644); err != nil {
		return nil, fmt.Errorf("image: write vmlinux: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.progress("initramfs")
	if err := writeInitramfs(filepath.Join(tmp, storeInitrdFile), b.in); err != nil {
		return nil, err
	}

	if b.origin != OriginMinimal {
		epoch, err := b.rootfs(ctx, tmp)
		if err != nil {
			return nil, err
		}
		m.RootFS, m.SourceDateEpoch = storeRootFSFile, epoch
	}

	b.progress("store")
	for _, f := range []string{m.Kernel, m.Initrd, m.RootFS} {
		if f == "" {
			continue
		}
		p := filepath.Join(tmp, f)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("image: store: %w", err)
		}
		m.SizeBytes += fi.Size()
		// Read-only for everyone: the base is shared by every VM.
		if err := os.Chmod(p, 0o444); err != nil {
			return nil, fmt.Errorf("image: store: %w", err)
		}
	}
	m.Created = time.Now().UTC().Truncate(time.Second)
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("image: manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, manifestFile), append(mb, '\n'), 0o444); err != nil {
		return nil, fmt.Errorf("image: manifest: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("image: store: %w", err)
	}
	if err := s.install(tmp, name); err != nil {
		return nil, err
	}
	b.log.Debug("image: built", "image", name, "size", m.SizeBytes)
	return s.read(name)
}

// rootfs builds tmp/rootfs.ext4 from the Debian archive or the tarball and
// returns the SOURCE_DATE_EPOCH it used.
func (b *storeBuild) rootfs(ctx context.Context, tmp string) (int64, error) {
	tarPath, clamp := b.spec.FromTar, int64(0)
	if b.origin == OriginDebian {
		clamp = b.epoch
		var err error
		if tarPath, err = b.debianTar(ctx, tmp); err != nil {
			return 0, err
		}
	}
	b.progress("unpack root file system")
	f, err := os.Open(tarPath)
	if err != nil {
		return 0, fmt.Errorf("image: %w", err)
	}
	stage := filepath.Join(tmp, "stage")
	if err := os.Mkdir(stage, 0o755); err != nil {
		f.Close()
		return 0, fmt.Errorf("image: stage: %w", err)
	}
	defer os.RemoveAll(stage)
	st, err := extractTar(ctx, f, stage, clamp)
	f.Close()
	if err != nil {
		if b.origin == OriginTar {
			return 0, fmt.Errorf("image: --from-tar %s: %w", b.spec.FromTar, err)
		}
		return 0, err
	}
	if err := checkShell(stage); err != nil {
		return 0, fmt.Errorf("image: %s: %w", b.describe(), err)
	}
	epoch := clamp
	if epoch == 0 {
		// A tarball's own newest time: what petty adds gets it too.
		for _, t := range st.times {
			epoch = max(epoch, t)
		}
	}
	if err := addAgent(stage, b.in.agent); err != nil {
		return 0, err
	}
	b.progress("rootfs")
	if err := makeExt4(ctx, b.tools, filepath.Join(tmp, storeRootFSFile), st, b.inputsKey, epoch, 0); err != nil {
		return 0, err
	}
	return epoch, nil
}

// describe names the image's source in errors.
func (b *storeBuild) describe() string {
	if b.origin == OriginTar {
		return "--from-tar " + b.spec.FromTar
	}
	return "Debian " + b.release
}

// addAgent writes the agent to agentRootFSPath of the staged tree (root
// owned, 0755), through an os.Root so that the tree's symbolic links
// cannot lead it outside.
func addAgent(stage string, agent []byte) error {
	root, err := os.OpenRoot(stage)
	if err != nil {
		return fmt.Errorf("image: add agent: %w", err)
	}
	defer root.Close()
	if err := root.MkdirAll(filepath.Dir(agentRootFSPath), 0o755); err != nil {
		return fmt.Errorf("image: add agent: %w", err)
	}
	if err := removeExisting(root, agentRootFSPath); err != nil {
		return err
	}
	f, err := root.OpenFile(agentRootFSPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("image: add agent: %w", err)
	}
	_, err = f.Write(agent)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Chmod(agentRootFSPath, 0o755)
	}
	if err != nil {
		return fmt.Errorf("image: add agent: %w", err)
	}
	return nil
}

// install moves the finished image directory tmp to the store as name,
// swapping it atomically with an older image of that name (which is then
// removed; VMs running from it keep their open files).
func (s *Store) install(tmp, name string) error {
	dst := filepath.Join(s.Dir, name)
	err := os.Rename(tmp, dst)
	if err == nil {
		return nil
	}
	if !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return fmt.Errorf("image: store: %w", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dst, unix.RENAME_EXCHANGE); err == nil {
		return nil // tmp now holds the old image, which the caller removes
	}
	// A file system without RENAME_EXCHANGE: move the old one aside first.
	trash, err := os.MkdirTemp(s.Dir, storeTrashPrefix+name+"-")
	if err != nil {
		return fmt.Errorf("image: store: %w", err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(dst, filepath.Join(trash, name)); err != nil {
		return fmt.Errorf("image: store: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("image: store: %w", err)
	}
	return nil
}

// debianTarPrefix starts the names of the Debian root file system
// tarballs the store keeps, one per image: a rebuild for a new agent or
// kernel from the same archive state skips mmdebstrap.
const debianTarPrefix = ".debian-"

// debianTar returns the mmdebstrap tarball of the image's Debian inputs
// and archive state, from the store when an earlier build made it, else
// running mmdebstrap (and keeping its tarball in place of the image's
// older one).
func (b *storeBuild) debianTar(ctx context.Context, tmp string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%q\x00%d", storeFormat, b.release, b.mirror,
		mmdebstrapArgs(b.release, b.mirror, b.packages, "OUT"), b.epoch)
	prefix := debianTarPrefix + b.spec.Name + "+"
	keep := filepath.Join(b.store.Dir, prefix+hex.EncodeToString(h.Sum(nil))[:24]+".tar")
	if fi, err := os.Stat(keep); err == nil && fi.Mode().IsRegular() {
		b.progress("debian: reusing the packages installed by the last build (" + filepath.Base(keep) + ")")
		return keep, nil
	}
	out := filepath.Join(tmp, "debian.tar")
	if len(b.spec.Packages) > 0 {
		// Packages beyond the default set may not exist: apt says so in
		// seconds, not after minutes of installing the others.
		b.progress("debian: checking the packages")
		if err := runMmdebstrap(ctx, b.release, b.mirror, b.packages, b.epoch, out, true, b.progress, b.log); err != nil {
			return "", err
		}
	}
	if err := runMmdebstrap(ctx, b.release, b.mirror, b.packages, b.epoch, out, false, b.progress, b.log); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(b.store.Dir, prefix+"*.tar"))
	for _, o := range old {
		_ = os.Remove(o)
	}
	if err := os.Rename(out, keep); err != nil {
		return "", fmt.Errorf("image: store: %w", err)
	}
	return keep, nil
}
