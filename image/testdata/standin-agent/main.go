// Command standin-agent stands in for petty-agent in the image package's
// boot tests. It reports what the guest looks like on stdout (the serial
// console) and, only when it is PID 1 (inside a guest), powers the machine
// off. Run anywhere else it just prints and exits. Like petty-agent it
// can be the initramfs's /init: it then sets the guest up with
// guest.BootInitramfs and reports the --listen it would serve on.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/pettyvm/petty/internal/guest"
)

func main() {
	args := os.Args[1:]
	if guest.IsInitramfsInit() {
		listen, err := guest.BootInitramfs(slog.New(slog.NewTextHandler(os.Stderr, nil)))
		if err != nil {
			fmt.Printf("STANDIN-INIT-FAILED %v\n", err)
		}
		args = []string{"--listen", listen}
		fmt.Println("STANDIN-INIT agent")
	}
	fmt.Printf("STANDIN-ARGS %s\n", strings.Join(args, " "))
	for _, p := range []string{"/dev/vda", "/dev/virtio-ports/petty.agent", "/dev/vsock"} {
		if _, err := os.Stat(p); err == nil {
			fmt.Printf("STANDIN-HAVE %s\n", p)
		} else {
			fmt.Printf("STANDIN-MISSING %s\n", p)
		}
	}
	if b, err := os.ReadFile("/proc/mounts"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[1] == "/" {
				fmt.Printf("STANDIN-ROOT %s %s\n", f[0], f[2])
			}
		}
	}
	if f, err := os.OpenFile("/dev/virtio-ports/petty.agent", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, "STANDIN-PORT hello")
		f.Close()
	}
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		fmt.Printf("STANDIN-UPTIME %s\n", strings.Fields(string(b))[0])
	}
	fmt.Println("PETTY-TEST-MARKER")
	if os.Getpid() != 1 {
		return
	}
	syscall.Sync()
	if err := syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("STANDIN-POWEROFF-FAILED %v\n", err)
	}
	select {}
}
