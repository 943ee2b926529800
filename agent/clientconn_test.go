package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// TestClientCancelWhileReading cancels a call whose caller is reading the
// connection for everyone; its late reply is dropped, the call is
// deregistered, and a later call still gets its own reply.
func TestClientCancelWhileReading(t *testing.T) {
	received, gaveUp := make(chan struct{}), make(chan struct{})
	pings := 0
	c, _ := startFakeAgent(t, func(f *fakeAgent, h wire.Header, body []byte) {
		pings++
		if pings == 1 {
			close(received)
			select { // reply only after the caller gave up
			case <-gaveUp:
			case <-f.stop:
				return
			}
		}
		f.respond(h.StreamID, &agentpb.PingResponse{Pid: int64(pings)})
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Ping(ctx)
		errc <- err
	}()
	<-received
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping: %v, want Canceled", err)
	}
	if n := c.w.registered(); n != 0 {
		t.Errorf("%d streams still registered after the call gave up", n)
	}
	close(gaveUp)
	info, err := c.Ping(testContext(t))
	if err != nil || info.PID != 2 {
		t.Fatalf("second Ping: %+v, %v; want the second reply", info, err)
	}
	c.Close()
	if _, err := c.Ping(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}
