package image

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path"
	"strings"
)

// initScript is the initramfs's shell init; see init.sh. It is /init
// itself when the agent cannot be (see agentIsInit), and /init.sh, which
// the agent as /init runs for a root= boot, when it can.
//
//go:embed init.sh
var initScript string

// agentInitProtocol is guest.InitramfsInitProtocol: an agent executable
// containing it can be the initramfs's /init.
const agentInitProtocol = "petty-agent-initramfs-init/1"

// agentIsInit reports whether the agent executable can be the initramfs's
// /init (see guest.BootInitramfs).
func agentIsInit(agent []byte) bool {
	return bytes.Contains(agent, []byte(agentInitProtocol))
}

// busyboxApplets get /bin symlinks to busybox: what /init runs plus a
// small shell toolbox for the agent.
var busyboxApplets = []string{
	"cat", "cp", "echo", "env", "grep", "head", "insmod", "ln", "ls", "lsmod",
	"mkdir", "mknod", "mount", "poweroff", "ps", "reboot", "rm", "sh",
	"sleep", "switch_root", "sync", "tail", "test", "umount", "uname",
}

const (
	agentGuestPath   = "sbin/petty-agent"
	modulesLoadPath  = "etc/petty/modules.load"
	guestModulesRoot = "lib/modules"
)

// baseTree holds what the initramfs and the root file system share:
// busybox with its applet links, the agent, and the usual directories.
func baseTree(in *inputs) (*tree, error) {
	t := newTree()
	for _, d := range []string{"dev", "proc", "sys", "run", "etc", "root", "usr/bin", "usr/sbin"} {
		if err := t.mkdir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.mkdir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := t.file("bin/busybox", 0o755, in.busybox); err != nil {
		return nil, err
	}
	for _, a := range busyboxApplets {
		if err := t.symlink("bin/"+a, "busybox"); err != nil {
			return nil, err
		}
	}
	if err := t.file(agentGuestPath, 0o755, in.agent); err != nil {
		return nil, err
	}
	if err := t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n")); err != nil {
		return nil, err
	}
	if err := t.file("etc/group", 0o644, []byte("root:x:0:\n")); err != nil {
		return nil, err
	}
	return t, nil
}

// initramfsTree is the initramfs: the base tree, /init (a symlink to the
// agent with the shell script at /init.sh when the agent can be init, else
// the script), /dev/console (the kernel opens it for init's stdio before
// anything mounts devtmpfs), and the modules with modules.load: one line
// per module in load order, "CONDITIONS PATH", CONDITIONS being "always" or
// a comma-separated list of devices any of which needs the module (see
// moduleWant.device).
func initramfsTree(in *inputs) (*tree, error) {
	t, err := baseTree(in)
	if err != nil {
		return nil, err
	}
	if agentIsInit(in.agent) {
		// Under TCG every fork and exec of busybox costs tens of
		// milliseconds: the agent does /init's work itself.
		if err := t.symlink("init", agentGuestPath); err != nil {
			return nil, err
		}
		if err := t.file("init.sh", 0o755, []byte(initScript)); err != nil {
			return nil, err
		}
	} else if err := t.file("init", 0o755, []byte(initScript)); err != nil {
		return nil, err
	}
	if err := t.charDev("dev/console", 0o600, 5, 1); err != nil {
		return nil, err
	}
	var load strings.Builder
	for _, m := range in.modules {
		p := path.Join(guestModulesRoot, in.release, plainModulePath(m.relPath))
		data, err := decompressModule(m.relPath, m.raw)
		if err != nil {
			return nil, err
		}
		if data, err = stripModuleSignature(m.relPath, data); err != nil {
			return nil, err
		}
		if err := t.file(p, 0o644, data); err != nil {
			return nil, err
		}
		fmt.Fprintf(&load, "%s /%s\n", strings.Join(m.when, ","), p)
	}
	if err := t.file(modulesLoadPath, 0o644, []byte(load.String())); err != nil {
		return nil, err
	}
	return t, nil
}

// writeInitramfs writes the cpio initramfs to dst, uncompressed: under
// TCG the kernel takes about 0.2s to gunzip the ~8 MB archive, far longer
// than it takes to copy it uncompressed.
func writeInitramfs(dst string, in *inputs) (retErr error) {
	t, err := initramfsTree(in)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("image: initramfs: %w", err)
	}
	defer func() {
		if err := f.Close(); err != nil && retErr == nil {
			retErr = fmt.Errorf("image: initramfs: %w", err)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := writeNewc(bw, t); err != nil {
		return fmt.Errorf("image: initramfs: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("image: initramfs: %w", err)
	}
	return nil
}
