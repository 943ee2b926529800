package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"syscall"

	"github.com/pettyvm/petty/image"
	"github.com/pettyvm/petty/vm"
)

// templateFormat is the version of identity's recipe: bump it when what
// the key covers changes.
const templateFormat = 1

// identity names what a VM is made of: the image's files (path, size,
// modification time, inode) and the VM settings that shape the guest
// (VMM, acceleration, memory, vCPUs, boot arguments, devices). A template
// snapshot is kept per identity, so a changed image file, or a sandbox of
// another size, gets a template of its own.
type identity string

// fileID identifies a file by what stat says of it: a rewritten or
// replaced file gets another.
type fileID struct {
	Path    string
	Size    int64
	MtimeNs int64
	Dev     uint64
	Ino     uint64
}

// statID returns the fileID of path (nil for "").
func statID(path string) (*fileID, error) {
	if path == "" {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	id := &fileID{Path: path, Size: fi.Size(), MtimeNs: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.Dev, id.Ino = uint64(st.Dev), st.Ino
	}
	return id, nil
}

// identify returns the identity of a VM of img sized and configured as
// cfg (the Manager's VM template, sized).
func identify(img Image, cfg vm.Config) (identity, error) {
	type driveID struct {
		ID       string
		File     *fileID
		ReadOnly bool
	}
	doc := struct {
		Format                       int
		VMM                          vm.VMM
		Accel                        string
		MemoryMiB, VCPUs             int
		SMT                          bool
		BootArgs                     string
		Kernel, Initrd, RootFS, Base *fileID
		ScratchBytes                 int64
		Drives                       []driveID
		Vsock, Network               bool
		VsockCID                     uint32
		QEMUBin, FirecrackerBin      string
	}{
		Format: templateFormat, VMM: cfg.VMM, Accel: cfg.Accel, MemoryMiB: cfg.MemoryMiB, VCPUs: cfg.VCPUs,
		SMT: cfg.SMT, BootArgs: cfg.BootArgs, ScratchBytes: img.ScratchBytes,
		Vsock: cfg.Vsock != nil, Network: cfg.Network != nil,
		QEMUBin: cfg.QEMUBin, FirecrackerBin: cfg.FirecrackerBin,
	}
	if cfg.Vsock != nil {
		doc.VsockCID = cfg.Vsock.CID
	}
	var err error
	for _, f := range []struct {
		dst  **fileID
		path string
	}{{&doc.Kernel, img.Kernel}, {&doc.Initrd, img.Initrd}, {&doc.RootFS, img.RootFS}, {&doc.Base, img.Base}} {
		if *f.dst, err = statID(f.path); err != nil {
			return "", fmt.Errorf("identifying the image: %w", err)
		}
	}
	for _, d := range cfg.Drives {
		if d.ID == image.ScratchDriveID {
			continue
		}
		f, err := statID(d.Path)
		if err != nil {
			return "", fmt.Errorf("identifying drive %s: %w", d.ID, err)
		}
		doc.Drives = append(doc.Drives, driveID{ID: d.ID, File: f, ReadOnly: d.ReadOnly})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("identifying the image: %w", err)
	}
	sum := sha256.Sum256(b)
	return identity(hex.EncodeToString(sum[:])), nil
}

// unsafeName matches what a template directory's name may not hold.
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// templatePrefix begins the names of the template directories of image
// name at one size: a new template replaces those.
func templatePrefix(name string, cfg vm.Config) string {
	if name == "" {
		name = DefaultImageName
	}
	return fmt.Sprintf("%s-%dm-%dc-", unsafeName.ReplaceAllString(name, "_"), cfg.MemoryMiB, cfg.VCPUs)
}
