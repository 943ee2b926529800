package image

// TEMPORARY SHIM of helper "imgbuild"'s image store (issue 8 contract), so
// that branch h-imgboot builds and its tests run before the merge. It
// implements only what imgboot's code calls, minimally: Get (a directory
// <store>/<name> holding manifest.json) and a Build that fails. DELETE THIS
// FILE AT MERGE: imgbuild's store replaces every identifier in it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
)

// DefaultImage is the name of the default image (shim).
const DefaultImage = "default"

// MinimalImage is the name of the busybox initramfs image (shim).
const MinimalImage = "minimal"

// ErrNoImage is matched by *NoImageError (shim).
var ErrNoImage = errors.New("image: no such image")

// NoImageError is an unknown image name (shim).
type NoImageError struct {
	Name string
	Have []string
}

func (e *NoImageError) Error() string {
	return fmt.Sprintf("image: no image %q (have: %v)", e.Name, e.Have)
}

// Is makes errors.Is(err, ErrNoImage) true.
func (e *NoImageError) Is(target error) bool { return target == ErrNoImage }

// Manifest is an image's manifest.json (shim: the fields imgboot reads).
type Manifest struct {
	Format int    `json:"format"`
	Name   string `json:"name"`
	Origin string `json:"origin"`
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd"`
	RootFS string `json:"rootfs"`
}

// Stored is an image in the store, with absolute paths (shim).
type Stored struct {
	Manifest
	Dir, Kernel, Initrd, RootFS string
}

// Store is the directory of images (shim).
type Store struct{ Dir string }

// BuildSpec says what to build (shim).
type BuildSpec struct {
	Name      string
	Packages  []string
	FromTar   string
	Minimal   bool
	Mirror    string
	Release   string
	AgentPath string
	Progress  func(step string)
	Logger    *slog.Logger
}

// DefaultStore is <cache>/images (shim).
func DefaultStore() (*Store, error) {
	c, err := defaultCacheDir()
	if err != nil {
		return nil, err
	}
	return OpenStore(filepath.Join(c, "images"))
}

// OpenStore opens the store at dir (shim).
func OpenStore(dir string) (*Store, error) { return &Store{Dir: dir}, nil }

// Get returns the image name (shim).
func (s *Store) Get(name string) (*Stored, error) {
	dir := filepath.Join(s.Dir, name)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if errors.Is(err, os.ErrNotExist) {
		var have []string
		ents, _ := os.ReadDir(s.Dir)
		for _, e := range ents {
			if _, err := os.Stat(filepath.Join(s.Dir, e.Name(), "manifest.json")); err == nil {
				have = append(have, e.Name())
			}
		}
		sort.Strings(have)
		return nil, &NoImageError{Name: name, Have: have}
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("image: %s: %w", name, err)
	}
	st := &Stored{Manifest: m, Dir: dir, Kernel: filepath.Join(dir, m.Kernel), Initrd: filepath.Join(dir, m.Initrd)}
	if m.RootFS != "" {
		st.RootFS = filepath.Join(dir, m.RootFS)
	}
	return st, nil
}

// errShimBuild is what the shim's Build returns.
var errShimBuild = errors.New("image: building store images is helper imgbuild's (not on this branch)")

// Build fails in the shim.
func (s *Store) Build(ctx context.Context, spec BuildSpec) (*Stored, error) {
	return nil, fmt.Errorf("%w: %s", errShimBuild, spec.Name)
}
