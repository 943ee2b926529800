package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// bareInit is the bare guest's /init: print the marker, power off at once.
const bareInit = "#!/bin/busybox sh\n/bin/busybox echo " + marker + "\n/bin/busybox poweroff -f\n"

// writeBareInitramfs writes petty's initramfs (base, an uncompressed cpio)
// followed by a second newc archive holding /dev/console, a static busybox as
// /bin/busybox and the trivial /init script. The kernel unpacks concatenated
// archives in order, so the bare guest unpacks exactly what petty's does and
// then runs the trivial /init instead of petty's.
func writeBareInitramfs(dst, base, busybox string) (retErr error) {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	baseData, err := os.ReadFile(base)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
	}()
	w := bufio.NewWriter(f)
	if _, err := w.Write(baseData); err != nil {
		return err
	}
	entries := []struct {
		name       string
		mode       uint32
		rmaj, rmin uint32
		data       []byte
	}{
		{"bin", 0o040755, 0, 0, nil},
		{"dev", 0o040755, 0, 0, nil},
		{"dev/console", 0o020600, 5, 1, nil},
		{"bin/busybox", 0o100755, 0, 0, bb},
		{"init", 0o100755, 0, 0, []byte(bareInit)},
		{"TRAILER!!!", 0, 0, 0, nil},
	}
	for i, e := range entries {
		if err := newcEntry(w, uint32(i+1), e.mode, e.rmaj, e.rmin, e.name, e.data); err != nil {
			return err
		}
	}
	return w.Flush()
}

// newcEntry writes one "070701" cpio entry.
func newcEntry(w io.Writer, ino, mode, rmaj, rmin uint32, name string, data []byte) error {
	nlink := uint32(1)
	if mode&0o040000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr+name+"\x00"); err != nil {
		return err
	}
	if _, err := w.Write(make([]byte, pad4(len(hdr)+len(name)+1))); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err := w.Write(make([]byte, pad4(len(data))))
	return err
}

func pad4(n int) int { return (4 - n%4) % 4 }
