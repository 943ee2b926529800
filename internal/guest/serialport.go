package guest

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pettyvm/petty/internal/retry"
)

// Waiting for the serial port to appear.
const (
	// serialPortWait bounds how long Run waits for a serial port that does
	// not exist yet.
	serialPortWait = 10 * time.Second
	// serialPortPollMin and serialPortPollMax bound the backoff between
	// looks.
	serialPortPollMin = 100 * time.Microsecond
	serialPortPollMax = 5 * time.Millisecond
)

// Where the kernel and udev put virtio-serial ports.
const (
	virtioPortsDir  = "/dev/virtio-ports"
	virtioPortClass = "/sys/class/virtio-ports"
)

// openSerialPort opens the serial port at path, waiting up to
// serialPortWait for it to appear. virtio_console adds a device's ports,
// and the host names them, asynchronously after the driver has loaded, so
// a guest's port may show up only after the agent started. For a path
// /dev/virtio-ports/NAME that does not exist, it also looks for a port
// named NAME in /sys/class/virtio-ports and opens its /dev node; when link
// is set (the agent is the guest's init, in udev's place) it then creates
// the /dev/virtio-ports/NAME symlink.
func openSerialPort(ctx context.Context, path string, link bool) (*os.File, error) {
	ctx, cancel := context.WithTimeout(ctx, serialPortWait)
	defer cancel()
	var port *os.File
	err := retry.Do(ctx, retry.Backoff{Min: serialPortPollMin, Max: serialPortPollMax}, func(context.Context) error {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			port = f
			return retry.Permanent(err)
		}
		if dev := namedVirtioPort(path); dev != "" {
			f, derr := os.OpenFile(dev, os.O_RDWR, 0)
			if derr == nil {
				if link {
					linkVirtioPort(path, dev)
				}
				port = f
				return nil
			}
			if !errors.Is(derr, fs.ErrNotExist) {
				return retry.Permanent(derr)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return port, nil
}

// namedVirtioPort returns the /dev node of the virtio-serial port that
// path (/dev/virtio-ports/NAME) names, or "" when there is no such port
// (yet).
func namedVirtioPort(path string) string {
	if filepath.Dir(path) != virtioPortsDir {
		return ""
	}
	want := filepath.Base(path)
	ports, err := os.ReadDir(virtioPortClass)
	if err != nil {
		return ""
	}
	for _, p := range ports {
		name, err := os.ReadFile(filepath.Join(virtioPortClass, p.Name(), "name"))
		if err == nil && strings.TrimSpace(string(name)) == want {
			return filepath.Join("/dev", p.Name())
		}
	}
	return ""
}

// linkVirtioPort makes the /dev/virtio-ports/NAME symlink udev would have
// made. Failures only cost the link.
func linkVirtioPort(path, dev string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return
	}
	_ = os.Symlink(filepath.Join("..", filepath.Base(dev)), path)
}

// virtioConsoleID is VIRTIO_ID_CONSOLE as /sys/bus/virtio/devices/*/device
// shows it.
const virtioConsoleID = "0x0003"

// linkVirtioPorts does udev's job for virtio-serial ports, as the
// initramfs's /init: it links every named port of every virtio console
// device under sysRoot (/sys) as devRoot/virtio-ports/NAME (devRoot being
// /dev) -> ../vportNpM. virtio_console adds a device's ports, and the host
// names them, asynchronously after the driver has loaded, so it waits, up
// to wait in all, for every console device to have ports and every port a
// name. Failures only cost links.
func linkVirtioPorts(sysRoot, devRoot string, wait time.Duration) {
	deadline := time.Now().Add(wait)
	again := func() bool {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
		return true
	}
	devs, _ := filepath.Glob(filepath.Join(sysRoot, "bus/virtio/devices/*"))
	for _, dev := range devs {
		id, err := os.ReadFile(filepath.Join(dev, "device"))
		if err != nil || strings.TrimSpace(string(id)) != virtioConsoleID {
			continue
		}
		var ports []string
		for {
			ports, _ = filepath.Glob(filepath.Join(dev, "virtio-ports", "vport*"))
			if len(ports) > 0 || !again() {
				break
			}
		}
		for _, p := range ports {
			var name string
			for {
				b, _ := os.ReadFile(filepath.Join(p, "name"))
				if name = strings.TrimSpace(string(b)); name != "" || !again() {
					break
				}
			}
			if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
				continue
			}
			link := filepath.Join(devRoot, "virtio-ports", name)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				return
			}
			_ = os.Remove(link)
			_ = os.Symlink(filepath.Join("..", filepath.Base(p)), link)
		}
	}
}
