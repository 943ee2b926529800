package vsock

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// Compile-time assertions.
var (
	_ net.Conn = (*Conn)(nil)
	_ net.Addr = (*Addr)(nil)
)

// Conn is a hybrid vsock connection. It implements net.Conn; its methods
// follow net.Conn's rules and are safe for concurrent use.
type Conn struct {
	conn   *net.UnixConn
	local  *Addr
	remote *Addr

	// rmu guards br, which holds the bytes the handshake read past the OK
	// line; once it is empty, reads go straight to conn.
	rmu sync.Mutex
	br  *bufio.Reader
}

// HostPort returns the host-side vsock port of the connection: the port of
// Firecracker's "OK <host_port>" answer for a dialed connection (not the guest
// port), the listening port for an accepted one.
func (c *Conn) HostPort() uint32 { return c.local.Port }

// Read reads data from the connection, starting with any bytes that arrived
// together with the handshake's answer.
func (c *Conn) Read(b []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(b)
		}
		c.br = nil // drop the buffer; never read through it again
	}
	return c.conn.Read(b)
}

// Write writes data to the connection.
func (c *Conn) Write(b []byte) (int, error) { return c.conn.Write(b) }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// CloseRead shuts down the reading side of the host's unix socket.
func (c *Conn) CloseRead() error { return c.conn.CloseRead() }

// CloseWrite shuts down the writing side of the host's unix socket. How the
// guest sees it is up to Firecracker.
func (c *Conn) CloseWrite() error { return c.conn.CloseWrite() }

// LocalAddr returns the host end: the device's uds_path and HostPort.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the guest end: the device's uds_path and the guest port
// (0 for an accepted connection, whose guest port the host is not told).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
