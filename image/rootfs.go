package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// mke2fsConf replaces the host's /etc/mke2fs.conf so the root file system
// does not depend on how the host configured e2fsprogs. The features are
// ones the 6.1 kernel's ext4 supports.
const mke2fsConf = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
`

// rootfsTree is the default root file system: the base tree, with
// /sbin/init pointing at the agent for kernels booted without our
// initramfs.
func rootfsTree(in *inputs) (*tree, error) {
	t, err := baseTree(in)
	if err != nil {
		return nil, err
	}
	if err := t.symlink("sbin/init", "petty-agent"); err != nil {
		return nil, err
	}
	return t, nil
}

// buildRootFS writes an ext4 image of rootfsTree to dst with mkfs.ext4 -d:
// no loop device, mount or root needed. The UUID and directory hash seed
// derive from the inputs and every timestamp is fixed, so the image is
// byte-identical across builds.
func buildRootFS(ctx context.Context, dst string, in *inputs) error {
	t, err := rootfsTree(in)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp(filepath.Dir(dst), ".rootfs-")
	if err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}
	defer os.RemoveAll(work)
	stage := filepath.Join(work, "root")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}
	if err := t.materialize(stage); err != nil {
		return err
	}
	conf := filepath.Join(work, "mke2fs.conf")
	if err := os.WriteFile(conf, []byte(mke2fsConf), 0o644); err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}

	seed := sha256.Sum256([]byte("petty-rootfs\x00" + in.key()))
	cmd := exec.CommandContext(ctx, in.mkfsPath,
		"-q", "-F", "-t", "ext4",
		"-L", "petty-root",
		"-U", uuidString(seed[:16]),
		"-m", "0",
		"-E", "root_owner=0:0,hash_seed="+uuidString(seed[16:])+",nodiscard,lazy_itable_init=0,lazy_journal_init=0",
		"-d", stage,
		dst, strconv.Itoa(in.rootFSSizeMiB)+"M",
	)
	cmd.Env = append(os.Environ(),
		"MKE2FS_CONFIG="+conf,
		"E2FSPROGS_FAKE_TIME=1",
		"SOURCE_DATE_EPOCH=1",
		"MKE2FS_DEVICE_SECTSIZE=512",
		"MKE2FS_DEVICE_PHYS_SECTSIZE=512",
		"E2FSPROGS_LIBMAGIC_SUPPRESS=1",
	)
	if err := runQuiet(cmd); err != nil {
		return err
	}

	// mkfs.ext4 -d copies each file's ctime, which no one can set; reset
	// them with debugfs (same package) so the image depends on the inputs
	// only.
	var script strings.Builder
	script.WriteString("set_inode_field / ctime @0\n")
	for _, p := range t.paths() {
		if t.nodes[p].kind != kindCharDev {
			fmt.Fprintf(&script, "set_inode_field /%s ctime @0\n", p)
		}
	}
	cmdFile := filepath.Join(work, "debugfs.cmd")
	if err := os.WriteFile(cmdFile, []byte(script.String()), 0o644); err != nil {
		return fmt.Errorf("image: rootfs: %w", err)
	}
	fix := exec.CommandContext(ctx, in.debugfsPath, "-w", "-f", cmdFile, dst)
	fix.Env = cmd.Env
	return runQuiet(fix)
}

// runQuiet runs cmd and returns its output in the error when it fails.
func runQuiet(cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("image: rootfs: %s: %w: %s", cmd.Path, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// uuidString formats 16 bytes as an RFC 4122 version 4 (random-format) UUID.
func uuidString(b []byte) string {
	var u [16]byte
	copy(u[:], b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
