package image

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pettyvm/petty/qemu"
)

// qemuArgs returns the qemu-system-x86_64 arguments that boot img on a
// microvm machine under TCG: serial console on stdio, a virtio-blk disk
// and a virtio-serial port named petty.agent written to portOut.
//
// The machine keeps microvm's PIT, PIC and RTC: under TCG the cloud kernel
// boots about a second faster with them than with pit=off,pic=off,rtc=off
// (no RTC costs a failed clock read; no PIT/PIC slows timer setup), and
// with pit=off it needs tsc_early_khz or it hangs calibrating the TSC.
// Virtio-mmio devices are found through ACPI (the kernel lacks
// CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES), which is microvm's default.
func qemuArgs(img *Image, disk, portOut, cmdline string) []string {
	return []string{
		"-M", "microvm,x-option-roms=off,isa-serial=on",
		"-accel", "tcg",
		"-cpu", "max",
		"-m", "256",
		"-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic",
		"-serial", "stdio",
		"-kernel", img.Kernel,
		"-initrd", img.Initrd,
		"-append", cmdline,
		"-no-reboot",
		"-drive", "id=disk0,file=" + disk + ",format=raw,if=none,snapshot=on",
		"-device", "virtio-blk-device,drive=disk0",
		"-device", "virtio-serial-device",
		"-chardev", "file,id=agent0,path=" + portOut,
		"-device", "virtserialport,chardev=agent0,name=petty.agent",
	}
}

// kernelCmdline is the command line the boot tests use; extra is appended.
func kernelCmdline(extra string) string {
	c := "console=ttyS0 reboot=t panic=-1 no_timer_check cryptomgr.notests tsc=reliable quiet"
	if khz := qemu.HostTSCkHz(); khz > 0 {
		c += " tsc_early_khz=" + strconv.Itoa(khz)
	}
	if extra != "" {
		c += " " + extra
	}
	return c
}

// bootResult is what a boot printed.
type bootResult struct {
	console string
	port    string
	wall    time.Duration // qemu start to marker
	uptime  string        // guest /proc/uptime at the marker: kernel start to marker
}

// boot runs qemu until the guest powers off and returns what it printed.
func boot(t *testing.T, img *Image, disk, extraCmdline string) bootResult {
	t.Helper()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
	}
	portOut := filepath.Join(t.TempDir(), "port.out")
	args := qemuArgs(img, disk, portOut, kernelCmdline(extraCmdline))
	t.Logf("qemu command: %s %s", qemu, shellQuote(args))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res bootResult
	var console strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		console.WriteString(line + "\n")
		if f, ok := strings.CutPrefix(line, "STANDIN-UPTIME "); ok {
			res.uptime = f
		}
		if line == "PETTY-TEST-MARKER" && res.wall == 0 {
			res.wall = time.Since(start)
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	waitErr := cmd.Wait()
	res.console = console.String()
	if b, err := os.ReadFile(portOut); err == nil {
		res.port = string(b)
	}
	if ctx.Err() != nil {
		t.Fatalf("guest did not power off within the deadline\nconsole:\n%s\nstderr:\n%s", res.console, stderr.String())
	}
	if waitErr != nil {
		t.Fatalf("qemu: %v\nconsole:\n%s\nstderr:\n%s", waitErr, res.console, stderr.String())
	}
	return res
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " ,=") && strings.Contains(a, " ") {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// TestBoot builds the image with the stand-in agent and boots it under
// QEMU/TCG twice: the agent from the initramfs with a scratch disk, then
// switched into the ext4 root file system on /dev/vda.
func TestBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM under TCG; skipped with -short")
	}
	hostKernel(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
	}
	img, err := Build(context.Background(), Options{
		AgentPath: standinAgent(t),
		CacheDir:  t.TempDir(),
		RootFS:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{img.Kernel, img.Initrd, img.RootFS} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes", filepath.Base(p), fi.Size())
	}

	foreign := foreignRootFS(t)
	tests := []struct {
		name    string
		disk    string
		cmdline string
		want    []string
	}{
		{
			name:    "initramfs",
			cmdline: "petty.listen=serial:///dev/virtio-ports/petty.agent",
			want: []string{
				"STANDIN-INIT agent", // the agent was /init, no shell
				"STANDIN-ARGS --listen serial:///dev/virtio-ports/petty.agent",
				"STANDIN-ROOT rootfs rootfs",
			},
		},
		{
			name:    "rootfs",
			cmdline: "root=/dev/vda",
			want: []string{
				"STANDIN-ARGS --listen vsock://:1024",
				"STANDIN-ROOT /dev/vda ext4",
			},
		},
		{
			// A root without the agent: /init brings the initramfs's
			// agent along on a tmpfs at /run.
			name:    "root without agent",
			disk:    foreign,
			cmdline: "petty.root=/dev/vda ro petty.listen=vsock://:2000",
			want: []string{
				"STANDIN-ARGS --listen vsock://:2000",
				"STANDIN-ROOT /dev/vda ext4",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk := tt.disk
			if disk == "" {
				disk = img.RootFS
			}
			res := boot(t, img, disk, tt.cmdline)
			// No vsock device: /init skips the vsock modules, so the
			// guest has no /dev/vsock.
			want := append([]string{
				"STANDIN-HAVE /dev/vda",
				"STANDIN-HAVE /dev/virtio-ports/petty.agent",
				"STANDIN-MISSING /dev/vsock",
				"PETTY-TEST-MARKER",
			}, tt.want...)
			for _, w := range want {
				if !strings.Contains(res.console, w+"\n") {
					t.Errorf("console lacks %q", w)
				}
			}
			if !strings.Contains(res.port, "STANDIN-PORT hello") {
				t.Errorf("virtio port output = %q, want the stand-in's greeting", res.port)
			}
			if strings.Contains(res.console, "petty-init:") || strings.Contains(res.console, "level=WARN") ||
				strings.Contains(res.console, "level=ERROR") || strings.Contains(res.console, "STANDIN-INIT-FAILED") {
				t.Errorf("init reported a problem")
			}
			if t.Failed() {
				t.Logf("console:\n%s", res.console)
			}
			t.Logf("TCG boot: kernel start to marker %ss (guest uptime), qemu start to marker %v", res.uptime, res.wall.Round(time.Millisecond))
		})
	}
}

// foreignRootFS makes a 16 MiB ext4 image with only /dev, /proc, /sys and
// /run: a root file system the agent is not installed in.
func foreignRootFS(t *testing.T) string {
	t.Helper()
	mkfs, err := findSbinTool(mkfsName)
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"dev", "proc", "sys", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	disk := filepath.Join(dir, "foreign.ext4")
	out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-d", root, disk, "16M").CombinedOutput()
	if err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	return disk
}
