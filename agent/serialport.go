package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Waiting for the serial port to appear.
const (
	// serialPortWait bounds how long Run waits for a serial port that does
	// not exist yet.
	serialPortWait = 10 * time.Second
	// serialPortPollMax caps the backoff between looks.
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
	deadline := time.Now().Add(serialPortWait)
	delay := 100 * time.Microsecond
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		if dev := namedVirtioPort(path); dev != "" {
			f, derr := os.OpenFile(dev, os.O_RDWR, 0)
			if derr == nil {
				if link {
					linkVirtioPort(path, dev)
				}
				return f, nil
			}
			if !errors.Is(derr, fs.ErrNotExist) {
				return nil, derr
			}
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, serialPortPollMax)
	}
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
