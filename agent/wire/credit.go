package agent

import "context"

// Flow-control windows, in messages. ttrpc buffers 64 messages per stream on
// each side; the windows below plus control messages stay under that.
const (
	outputWindow = 32       // exec stdout/stderr and file data messages towards the host
	inputWindow  = 16       // exec stdin and file data messages towards the agent
	chunkSize    = 32 << 10 // bytes per data message
)

// window counts credits granted by the receiving side of a stream.
type window struct{ ch chan struct{} }

func newWindow(n int) *window {
	w := &window{ch: make(chan struct{}, n)}
	w.grant(n)
	return w
}

// take blocks until a credit is available or ctx is done.
func (w *window) take(ctx context.Context) error {
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// grant adds n credits; credits beyond the window size are dropped, so a
// peer cannot make us overrun its own buffers by over-granting.
func (w *window) grant(n int) {
	for range n {
		select {
		case w.ch <- struct{}{}:
		default:
			return
		}
	}
}

// acker batches acknowledgements of consumed messages into credit grants.
type acker struct {
	pending int
	batch   int
}

// consumed records one consumed message and reports how many credits to
// grant now (0 while batching).
func (a *acker) consumed() int {
	a.pending++
	if a.pending < a.batch {
		return 0
	}
	n := a.pending
	a.pending = 0
	return n
}
