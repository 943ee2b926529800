package guest

import (
	"errors"
	"io"
	"os"
	"time"
)

// virtioPortPoll is how often a virtio-serial port is re-read while no host
// is connected to it.
const virtioPortPoll = 10 * time.Millisecond

// virtioPort is a virtio-serial port device (/dev/virtio-ports/NAME). While
// no host is connected to the port's backend, the kernel answers read with
// 0 bytes (EOF) at once, and poll reports it readable: a host that closes its
// connection is not the end of the stream, a later host will connect and
// sync. virtioPort turns those EOFs into a wait, so that ServeSerial simply
// sees the next host's sync line.
type virtioPort struct{ f *os.File }

var _ io.ReadWriteCloser = virtioPort{}

func (p virtioPort) Read(b []byte) (int, error) {
	for {
		n, err := p.f.Read(b)
		if n > 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		time.Sleep(virtioPortPoll)
	}
}

func (p virtioPort) Write(b []byte) (int, error) { return p.f.Write(b) }

func (p virtioPort) Close() error { return p.f.Close() }
