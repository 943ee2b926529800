package qemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCheckConfigCmdline(t *testing.T) {
	for _, tt := range []struct {
		cmdline string
		ok      bool
	}{
		{"console=ttyS0 a=1,2 b=x=y", true},
		{strings.Repeat("x", MaxConfigCmdline), true},
		{strings.Repeat("x", MaxConfigCmdline+1), false},
		{`init="/bin/sh -c"`, false},
		{"a\nb", false},
	} {
		if err := CheckConfigCmdline(tt.cmdline); (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrCmdline)) {
			t.Errorf("CheckConfigCmdline(%.20q…) = %v, want ok %v", tt.cmdline, err, tt.ok)
		}
	}
}

// TestConfigCmdlineRealQEMU starts the real qemu-system-x86_64 (paused, the
// guest never runs) with the command line in a config file: QEMU must see
// it whole, at the longest length allowed, and its argv must not hold it.
func TestConfigCmdlineRealQEMU(t *testing.T) {
	bin, err := FindBinary()
	if err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
	}
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Skip("no /boot/vmlinuz-*: apt-get install linux-image-cloud-amd64")
	}
	dir, err := os.MkdirTemp("/tmp", "qcfg-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	secret := "petty.token=0123456789abcdef"
	cmdline := "console=ttyS0 a=1,2 b=x=y " + secret + " pad="
	cmdline += strings.Repeat("p", MaxConfigCmdline-len(cmdline))
	s := Spec{
		Accel: AccelTCG, VCPUs: 1, MemoryMiB: 64, Kernel: kernels[0], Cmdline: cmdline,
		ConfigPath: filepath.Join(dir, "qemu.cfg"), QMPSocket: filepath.Join(dir, "qmp.sock"),
	}
	// QEMU's seccomp filter, where the build has it, must not keep the
	// -readconfig file from being read (petty passes both).
	s.Sandbox = SandboxSupported(bin)
	if err := s.WriteConfig(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.ConfigPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	args := append(s.Args(), "-S")
	if slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, secret) }) {
		t.Fatalf("argv holds the command line: %q", args)
	}
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var q *QMP
	for q == nil {
		if q, err = DialQMP(ctx, s.QMPSocket); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("QMP: %v; QEMU said %s", err, out.String())
			}
			q = nil
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer q.Close()
	var got string
	if err := q.Execute(ctx, "qom-get", map[string]any{"path": "/machine", "property": "append"}, &got); err != nil {
		t.Fatal(err)
	}
	if got != cmdline {
		t.Errorf("QEMU's append is %d bytes %.40q…, want the %d-byte command line", len(got), got, len(cmdline))
	}
	argv, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(argv), secret) {
		t.Errorf("/proc/%d/cmdline holds the secret", cmd.Process.Pid)
	}
}
