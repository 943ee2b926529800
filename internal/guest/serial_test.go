package guest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/agent/wire"
)

// fakeSerialPort models a virtio-serial port with a host-side chardev that
// host processes connect to one at a time: the guest end is one endless
// stream; guest output with no host attached is lost, as in QEMU.
type fakeSerialPort struct {
	guest net.Conn // the agent's end
	dev   net.Conn // the device side of the guest stream

	mu   sync.Mutex
	host net.Conn // the device side of the attached host connection
	wg   sync.WaitGroup
}

func newFakeSerialPort(t *testing.T) *fakeSerialPort {
	p := &fakeSerialPort{}
	p.guest, p.dev = net.Pipe()
	p.wg.Go(func() { // guest -> attached host
		buf := make([]byte, 32<<10)
		for {
			n, err := p.dev.Read(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			h := p.host
			p.mu.Unlock()
			if h != nil {
				h.Write(buf[:n])
			}
		}
	})
	t.Cleanup(func() {
		p.dev.Close()
		p.mu.Lock()
		if p.host != nil {
			p.host.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// connect attaches a new host connection, detaching the previous one.
func (p *fakeSerialPort) connect() net.Conn {
	hostEnd, devEnd := net.Pipe()
	p.mu.Lock()
	if p.host != nil {
		p.host.Close()
	}
	p.host = devEnd
	p.mu.Unlock()
	p.wg.Go(func() { // host -> guest, until the host goes away
		io.Copy(p.dev, devEnd)
		p.mu.Lock()
		if p.host == devEnd {
			p.host = nil
		}
		p.mu.Unlock()
	})
	return hostEnd
}

func startSerialServer(t *testing.T) *fakeSerialPort {
	port := newFakeSerialPort(t)
	srv := &Server{}
	done := make(chan error, 1)
	go func() { done <- srv.ServeSerial(port.guest) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeSerial: %v", err)
		}
	})
	return port
}

func serialClient(t *testing.T, port *fakeSerialPort) *agent.Client {
	conn := port.connect()
	if err := agent.SerialHandshake(testContext(t), conn); err != nil {
		t.Fatal(err)
	}
	if err := agent.Authenticate(testContext(t), conn, ""); err != nil {
		t.Fatal(err)
	}
	c := agent.NewClient(conn)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestSerial(t *testing.T) {
	port := startSerialServer(t)
	// Noise before the first host (boot messages, a previous session),
	// written straight into the guest's stream: the Write returns once the
	// agent has read all of it, so it precedes the first sync line.
	if _, err := port.dev.Write([]byte("garbage \x00\x01\x02\n\x00\x00\x00\x05junk PETTY-SYNC\n")); err != nil {
		t.Fatal(err)
	}

	c := serialClient(t, port)
	ctx := testContext(t)
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	data := strings.Repeat("0123456789", 100000)
	if err := c.Exec(ctx, &agent.Cmd{Args: []string{"cat"}, Stdin: strings.NewReader(data), Stdout: &out}); err != nil || out.String() != data {
		t.Fatalf("exec over serial: %d bytes, %v", out.Len(), err)
	}
}

func TestSerialReconnect(t *testing.T) {
	port := startSerialServer(t)
	ctx := testContext(t)

	first := serialClient(t, port)
	w := newPIDWriter()
	errc := make(chan error, 1)
	go func() {
		errc <- first.Exec(ctx, &agent.Cmd{Args: []string{"sh", "-c", "echo $$; exec sleep 100"}, Stdout: w})
	}()
	pid := <-w.got

	// A second host connects while the first session is mid-exec and never
	// closed cleanly: the agent must resynchronise and kill the old command.
	second := serialClient(t, port)
	if _, err := second.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	first.Close()
	<-errc

	// And once more after the second went away.
	second.Close()
	third := serialClient(t, port)
	out, err := third.Output(ctx, "echo", "third")
	if err != nil || string(out) != "third\n" {
		t.Fatalf("Output = %q, %v", out, err)
	}
}

func TestParseSync(t *testing.T) {
	for line, want := range map[string]string{
		"PETTY-SYNC abc123":         "abc123",
		"\x00\x01junkPETTY-SYNC ff": "ff",
		"PETTY-SYNC ":               "",
		"PETTY-SYNC a b":            "",
		"PETTY-SYNC " + strings.Repeat("a", wire.MaxNonceLen+1): "",
		"PETTY-READY abc": "",
	} {
		if got := parseSync([]byte(line)); got != want {
			t.Errorf("parseSync(%q) = %q, want %q", line, got, want)
		}
	}
}
