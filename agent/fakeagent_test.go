package agent

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/pettyvm/petty/agent/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeAgent is the agent's end of a connection, driven by a test: it
// reads the host's frames on its own goroutine and hands each to handle,
// which may write anything back.
type fakeAgent struct {
	conn net.Conn
	wmu  sync.Mutex
	done chan struct{}
	stop chan struct{} // closed when the test ends
	wg   sync.WaitGroup
}

// spawn runs fn on a goroutine that the test's end waits for; fn should
// return once f.stop is closed or a write fails.
func (f *fakeAgent) spawn(fn func()) { f.wg.Go(fn) }

// startFakeAgent connects a Client to a fake agent whose handle is called
// for every frame the host sends (nil: read and ignore). Both are closed
// when the test ends, and the fake's goroutine is waited for.
func startFakeAgent(t testing.TB, handle func(f *fakeAgent, h wire.Header, body []byte), opts ...Option) (*Client, *fakeAgent) {
	t.Helper()
	host, guest := net.Pipe()
	f := &fakeAgent{conn: guest, done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			h, body, err := wire.ReadFrame(guest, wire.MaxFrameSize)
			if err != nil {
				return
			}
			if handle != nil {
				handle(f, h, body)
			}
		}
	}()
	c := NewClient(host, opts...)
	t.Cleanup(func() {
		close(f.stop)
		c.Close()
		guest.Close()
		<-f.done
		f.wg.Wait()
	})
	return c, f
}

// write writes raw bytes, whole.
func (f *fakeAgent) write(b []byte) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	_, err := f.conn.Write(b)
	return err
}

// respond answers stream id with an OK response carrying m.
func (f *fakeAgent) respond(id uint32, m proto.Message) error {
	return f.write(wire.AppendResponseFrame(nil, id, wire.Status{}, m))
}

// sendData writes m as a data frame on stream id.
func (f *fakeAgent) sendData(id uint32, m proto.Message) error {
	b, err := wire.AppendFrame(nil, id, wire.TypeData, 0, m)
	if err != nil {
		return err
	}
	return f.write(b)
}

// method returns the method of a request frame's body.
func method(body []byte) string {
	var r wire.Request
	if r.Unmarshal(body) != nil {
		return ""
	}
	return r.Method
}

// rawFrame builds a frame with an arbitrary header.
func rawFrame(id uint32, typ, flags byte, payload []byte) []byte {
	b := make([]byte, wire.HeaderLen, wire.HeaderLen+len(payload))
	wire.Header{Length: uint32(len(payload)), StreamID: id, Type: typ, Flags: flags}.Put(b)
	return append(b, payload...)
}

// returnsBy fails t unless err arrives on errc within d.
func returnsBy(t *testing.T, errc <-chan error, d time.Duration) error {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-errc:
		return err
	case <-timer.C:
		t.Fatalf("call did not return within %v", d)
		return errors.New("unreachable")
	}
}
