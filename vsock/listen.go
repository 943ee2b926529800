package vsock

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// Listen listens for guest-initiated connections to host port port of the
// Firecracker vsock device whose uds_path is udsPath, on the unix socket
// "<udsPath>_<port>". A stale socket file left there by a dead listener is
// removed first; a live one is an error (EADDRINUSE). Closing the listener
// removes the socket file. Accept returns *Conn values.
func Listen(udsPath string, port uint32) (net.Listener, error) {
	addr := &Addr{Path: udsPath, Port: port}
	path := udsPath + "_" + strconv.FormatUint(uint64(port), 10)
	if err := removeStaleSocket(path); err != nil {
		return nil, opError("listen", addr, err)
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, opError("listen", addr, err)
	}
	ul.SetUnlinkOnClose(true)
	return &listener{ul: ul, addr: addr}, nil
}

// removeStaleSocket removes the unix socket at path when nobody listens on
// it. It leaves anything that is not a socket for bind to fail on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return &os.PathError{Op: "listen", Path: path, Err: syscall.EADDRINUSE}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// listener is the net.Listener returned by Listen.
type listener struct {
	ul   *net.UnixListener
	addr *Addr
}

// Accept waits for the next guest-initiated connection and returns it as a
// *Conn.
func (l *listener) Accept() (net.Conn, error) {
	uc, err := l.ul.AcceptUnix()
	if err != nil {
		return nil, opError("accept", l.addr, err)
	}
	return &Conn{conn: uc, local: l.addr, remote: &Addr{Path: l.addr.Path}}, nil
}

// Close stops listening and removes the socket file.
func (l *listener) Close() error {
	if err := l.ul.Close(); err != nil {
		return opError("close", l.addr, err)
	}
	return nil
}

// Addr returns the device's uds_path and the listening port.
func (l *listener) Addr() net.Addr { return l.addr }
