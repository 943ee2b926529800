package qemu

import (
	"slices"
	"strings"
	"testing"
)

func TestArgsSandboxAndVhostFD(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		want    [][]string // consecutive arguments that must appear
		notWant []string
	}{
		{"sandbox", Spec{Sandbox: true, QMPSocket: "/q"},
			[][]string{{"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}}, nil},
		{"no sandbox", Spec{QMPSocket: "/q"}, nil, []string{"-sandbox"}},
		{"sandbox with the command line in a -readconfig file",
			Spec{Sandbox: true, QMPSocket: "/q", Kernel: "/k", Cmdline: "console=ttyS0 petty.token=s", ConfigPath: "/run/qemu.cfg"},
			[][]string{{"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"}, {"-readconfig", "/run/qemu.cfg"}},
			[]string{"-append", "console=ttyS0 petty.token=s"}},
		{"vhost-vsock, QEMU opens the device", Spec{VsockCID: 7, QMPSocket: "/q"},
			[][]string{{"-device", "vhost-vsock-device,guest-cid=7"}}, nil},
		{"vhost-vsock, fd passed", Spec{VsockCID: 7, VsockFD: 3, QMPSocket: "/q"},
			[][]string{{"-device", "vhost-vsock-device,guest-cid=7,vhostfd=3"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.spec.Args()
			for _, w := range tt.want {
				if !containsSeq(args, w) {
					t.Errorf("args lack %q:\n%s", w, strings.Join(args, " "))
				}
			}
			for _, nw := range tt.notWant {
				if slices.Contains(args, nw) {
					t.Errorf("args have %q:\n%s", nw, strings.Join(args, " "))
				}
			}
		})
	}
}

func TestSandboxSupported(t *testing.T) {
	if SandboxSupported("/nonexistent/qemu") {
		t.Error("a missing binary supports -sandbox")
	}
	bin, err := FindBinary()
	if err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
	}
	// Debian's QEMU (7.2 and later) is built with seccomp.
	if !SandboxSupported(bin) {
		t.Errorf("%s does not support -sandbox %s", bin, SandboxOptions)
	}
}

// containsSeq reports whether seq appears in args as consecutive elements.
func containsSeq(args, seq []string) bool {
	for i := range args {
		if i+len(seq) <= len(args) && slices.Equal(args[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}
