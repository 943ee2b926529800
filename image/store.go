package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/internal/privdir"
)

// Names of the images petty builds itself.
const (
	// DefaultImage is the Debian image petty run boots unless told
	// otherwise: DefaultPackages from the host's Debian release.
	DefaultImage = "default"
	// MinimalImage is the busybox initramfs image (no root file system).
	MinimalImage = "minimal"
)

// Origins of an image (Manifest.Origin).
const (
	OriginDebian  = "debian"
	OriginTar     = "tar"
	OriginMinimal = "minimal"
)

// manifestFormat is Manifest.Format of the manifests Build writes.
const manifestFormat = 1

// File names inside an image directory.
const (
	manifestFile     = "manifest.json"
	storeKernelFile  = "vmlinux"
	storeInitrdFile  = "initrd.cpio"
	storeRootFSFile  = "rootfs.ext4"
	storeLockPrefix  = ".lock-"
	storeBuildPrefix = ".build-"
	storeTrashPrefix = ".trash-"
)

// ErrNoImage is matched (errors.Is) by a *NoImageError.
var ErrNoImage = errors.New("image: no such image")

// ErrBadName is returned (wrapped) for an image name that does not match
// ^[a-z0-9][a-z0-9_.-]{0,62}$.
var ErrBadName = errors.New("image: invalid image name")

// NoImageError reports an image name that is not in the store, with the
// names that are.
type NoImageError struct {
	// Name is the image asked for.
	Name string
	// Have are the names of the images in the store, sorted.
	Have []string
}

// Error names the image and lists the ones that exist.
func (e *NoImageError) Error() string {
	have := "the store is empty"
	if len(e.Have) > 0 {
		have = "images: " + strings.Join(e.Have, ", ")
	}
	hint := ""
	if e.Name == DefaultImage || e.Name == MinimalImage {
		hint = " (build it with `petty image build"
		if e.Name == MinimalImage {
			hint += " --minimal"
		}
		hint += "`)"
	}
	return fmt.Sprintf("image: no image named %q%s; %s", e.Name, hint, have)
}

// Is makes errors.Is(err, ErrNoImage) true.
func (e *NoImageError) Is(target error) bool { return target == ErrNoImage }

// Manifest describes a stored image (manifest.json).
type Manifest struct {
	// Format is the manifest format, 1.
	Format int `json:"format"`
	// Name is the image's name in the store.
	Name string `json:"name"`
	// Origin is OriginDebian, OriginTar or OriginMinimal.
	Origin string `json:"origin"`
	// Created is when the image was built.
	Created time.Time `json:"created"`
	// SizeBytes is the apparent size of the image's files together.
	SizeBytes int64 `json:"size_bytes"`
	// Key is the hex SHA-256 of every input, the archive's state included
	// when known: the same key means the same image.
	Key string `json:"key"`
	// InputsKey is Key without the Debian archive's state: a Build whose
	// inputs hash to it is a cache hit unless BuildSpec.Refresh.
	InputsKey string `json:"inputs_key,omitempty"`
	// Release is the Debian suite, e.g. "bookworm" (OriginDebian).
	Release string `json:"release,omitempty"`
	// Mirror is the Debian archive it was built from (OriginDebian).
	Mirror string `json:"mirror,omitempty"`
	// ArchiveDate is the Date of the archive's Release file when fetched
	// (OriginDebian), RFC 1123.
	ArchiveDate string `json:"archive_date,omitempty"`
	// SourceDateEpoch is the SOURCE_DATE_EPOCH the root file system was
	// built with: every file time is clamped to it.
	SourceDateEpoch int64 `json:"source_date_epoch,omitempty"`
	// Packages are the Debian packages asked for (OriginDebian).
	Packages []string `json:"packages,omitempty"`
	// Tar is the sha256 of the tarball (OriginTar).
	Tar string `json:"tar_sha256,omitempty"`
	// Kernel, Initrd and RootFS are file names in the image directory;
	// RootFS is "" for OriginMinimal.
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd"`
	RootFS string `json:"rootfs"`
}

// Stored is an image in the store, with absolute paths of its files. The
// files are read-only (0444) and shared: boot the root file system
// read-only.
type Stored struct {
	Manifest
	// Dir is the image's directory.
	Dir string
	// Kernel is the uncompressed ELF vmlinux.
	Kernel string
	// Initrd is the cpio initramfs whose /init is the agent.
	Initrd string
	// RootFS is the ext4 base root file system, "" for a minimal image.
	RootFS string
	// Cached reports that Build found the image already built.
	Cached bool
}

// Store is petty's image store: one directory per image under Dir.
type Store struct {
	// Dir is the store's directory, 0700.
	Dir string
}

// DefaultStore opens the store in the default cache directory
// ($XDG_CACHE_HOME/petty/images or ~/.cache/petty/images).
func DefaultStore() (*Store, error) {
	cache, err := defaultCacheDir()
	if err != nil {
		return nil, err
	}
	return OpenStore(filepath.Join(cache, "images"))
}

// OpenStore opens (creating it 0700 if needed) the store at dir.
func OpenStore(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image: store: %w", err)
	}
	if err := privdir.Ensure(abs); err != nil {
		return nil, fmt.Errorf("image: store: %w", err)
	}
	return &Store{Dir: abs}, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// CheckName returns an error wrapping ErrBadName unless name is a valid
// image name.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: use 1 to 63 of a-z 0-9 _ . -, starting with a letter or digit", ErrBadName, name)
	}
	return nil
}

// Get returns the image called name, or a *NoImageError.
func (s *Store) Get(name string) (*Stored, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	st, err := s.read(name)
	if errors.Is(err, os.ErrNotExist) {
		have, lerr := s.names()
		if lerr != nil {
			return nil, lerr
		}
		return nil, &NoImageError{Name: name, Have: have}
	}
	return st, err
}

// read loads name's manifest; a missing image is os.ErrNotExist.
func (s *Store) read(name string) (*Stored, error) {
	dir := filepath.Join(s.Dir, name)
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("image: %s: %w", name, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image: %s: manifest: %w", name, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("image: %s: manifest format %d, want %d (rebuild it)", name, m.Format, manifestFormat)
	}
	st := &Stored{Manifest: m, Dir: dir,
		Kernel: filepath.Join(dir, m.Kernel), Initrd: filepath.Join(dir, m.Initrd)}
	if m.RootFS != "" {
		st.RootFS = filepath.Join(dir, m.RootFS)
	}
	for _, p := range []string{st.Kernel, st.Initrd, st.RootFS} {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("image: %s: incomplete, %s missing (rebuild it): %w", name, filepath.Base(p), os.ErrNotExist)
		}
	}
	return st, nil
}

// names lists the image directories of the store, sorted.
func (s *Store) names() ([]string, error) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("image: store: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && nameRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// List returns the manifests of every image in the store, by name.
// Directories without a readable manifest are left out.
func (s *Store) List() ([]Manifest, error) {
	names, err := s.names()
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, n := range names {
		st, err := s.read(n)
		if err != nil {
			continue
		}
		out = append(out, st.Manifest)
	}
	return out, nil
}

// Remove deletes the image called name; an unknown name is a
// *NoImageError. VMs running from it keep their open files.
func (s *Store) Remove(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	dir := filepath.Join(s.Dir, name)
	notFound := func() error {
		have, err := s.names()
		if err != nil {
			return err
		}
		return &NoImageError{Name: name, Have: have}
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return notFound() // no lock file for a name that never was
	}
	unlock, err := s.lock(context.Background(), name)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return notFound() // removed while we waited
	}
	trash, err := os.MkdirTemp(s.Dir, storeTrashPrefix+name+"-")
	if err != nil {
		return fmt.Errorf("image: remove %s: %w", name, err)
	}
	defer os.RemoveAll(trash)
	if err := os.Rename(dir, filepath.Join(trash, name)); err != nil {
		return fmt.Errorf("image: remove %s: %w", name, err)
	}
	tars, _ := filepath.Glob(filepath.Join(s.Dir, debianTarPrefix+name+"+*.tar"))
	for _, t := range tars {
		_ = os.Remove(t)
	}
	return nil
}

// Ensure returns spec.Name from the store whatever inputs it was built
// from, and builds it with spec only when it is not there: what petty run
// calls for DefaultImage (or MinimalImage) on first use, reporting the
// build's steps through spec.Progress. Other names are never built: a
// missing one is a *NoImageError.
func (s *Store) Ensure(ctx context.Context, spec BuildSpec) (*Stored, error) {
	if spec.Name == "" {
		spec.Name = DefaultImage
		if spec.Minimal {
			spec.Name = MinimalImage
		}
	}
	st, err := s.Get(spec.Name)
	if err == nil || !errors.Is(err, ErrNoImage) {
		return st, err
	}
	if spec.Name != DefaultImage && spec.Name != MinimalImage {
		return nil, err
	}
	spec.Minimal = spec.Name == MinimalImage
	return s.Build(ctx, spec)
}

// lockPollInterval is how often lock retries a lock another process holds.
const lockPollInterval = 100 * time.Millisecond

// lock takes the store's lock for name (flock on a file beside the image),
// waiting while another process holds it, until ctx is done.
func (s *Store) lock(ctx context.Context, name string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, storeLockPrefix+name), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image: lock %s: %w", name, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("image: lock %s: %w", name, err)
		}
		t := time.NewTimer(lockPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("image: waiting for another build of %s: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}
