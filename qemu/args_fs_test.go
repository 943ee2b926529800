package qemu

import (
	"slices"
	"strings"
	"testing"
)

// A virtio-fs device needs guest memory in a shared memfd (vhost-user maps
// it) and a modern virtio-mmio transport (libvhost-user refuses legacy).
func TestArgsFS(t *testing.T) {
	s := Spec{QMPSocket: "/q", MemoryMiB: 256, FS: []FS{{Tag: "petty", Socket: "/run/fs.sock"}, {Tag: "b", Socket: "/run/b.sock"}}}
	args := s.Args()
	for _, w := range [][]string{
		{"-object", "memory-backend-memfd,id=mem,share=on,size=256M"},
		{"-M", machineOptions + ",memory-backend=mem"},
		{"-global", "virtio-mmio.force-legacy=false"},
		{"-chardev", "socket,id=fs0,path=/run/fs.sock", "-device", "vhost-user-fs-device,chardev=fs0,tag=petty"},
		{"-chardev", "socket,id=fs1,path=/run/b.sock", "-device", "vhost-user-fs-device,chardev=fs1,tag=b"},
	} {
		if !containsSeq(args, w) {
			t.Errorf("args lack %q:\n%s", w, strings.Join(args, " "))
		}
	}
	plain := (&Spec{QMPSocket: "/q", MemoryMiB: 256}).Args()
	for _, nw := range []string{"-object", "-global"} {
		if slices.Contains(plain, nw) {
			t.Errorf("args without FS have %q:\n%s", nw, strings.Join(plain, " "))
		}
	}
}
