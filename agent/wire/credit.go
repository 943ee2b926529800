package wire

import "context"

// Flow-control windows, in messages. Each side buffers a bounded number of
// frames per stream; the windows plus the few control messages of a stream
// stay well under that, so a peer that sends more has broken the protocol.
const (
	// OutputWindow is how many exec stdout/stderr and file data messages
	// the agent may send the host beyond those the host acknowledged.
	OutputWindow = 32
	// InputWindow is how many exec stdin and file data messages the host
	// may send the agent beyond those the agent acknowledged.
	InputWindow = 16
	// ChunkSize is the largest payload of one data message.
	ChunkSize = 32 << 10
	// StreamInbox is how many frames either side buffers per stream; a peer
	// that makes a stream's buffer overflow has overrun its credits.
	StreamInbox = 64
)

// Window counts credits granted by the receiving side of a stream, for the
// sending side.
type Window struct{ ch chan struct{} }

// NewWindow returns a Window holding n credits, n being also its size.
func NewWindow(n int) *Window {
	w := &Window{ch: make(chan struct{}, n)}
	w.Grant(n)
	return w
}

// Take blocks until a credit is available or ctx is done.
func (w *Window) Take(ctx context.Context) error {
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Grant adds n credits; credits beyond the window size are dropped, so a
// peer cannot make us overrun its own buffers by over-granting.
func (w *Window) Grant(n int) {
	for range n {
		select {
		case w.ch <- struct{}{}:
		default:
			return
		}
	}
}

// Acker batches acknowledgements of consumed messages into credit grants.
type Acker struct {
	pending int
	batch   int
}

// NewAcker returns an Acker that grants credits batch at a time.
func NewAcker(batch int) *Acker { return &Acker{batch: batch} }

// Consumed records one consumed message and reports how many credits to
// grant now (0 while batching).
func (a *Acker) Consumed() int {
	a.pending++
	if a.pending < a.batch {
		return 0
	}
	n := a.pending
	a.pending = 0
	return n
}
