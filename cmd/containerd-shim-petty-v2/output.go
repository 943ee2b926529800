package main

import (
	"io"
	"sync"
	"time"
)

// Output queue bounds: what the guest process wrote waits here while the
// reader of containerd's FIFO (ctr, the CRI log writer) is slow or gone.
const (
	outputQueue = 1024 // chunks
	// outputDrain bounds how long the queue may take to empty after the
	// process exited.
	outputDrain = 5 * time.Second
)

// asyncWriter copies writes to w in the background, so that a FIFO reader
// that stopped reading never holds up the agent's stream, and with it the
// exit status. A full queue drops output; a failed write discards the rest
// (the process keeps running, as under runc when the FIFO's reader left).
type asyncWriter struct {
	w    io.WriteCloser
	q    chan []byte
	done chan struct{}
	once sync.Once
}

func newAsyncWriter(w io.WriteCloser) *asyncWriter {
	a := &asyncWriter{w: w, q: make(chan []byte, outputQueue), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	broken := false
	for b := range a.q {
		if !broken {
			if _, err := a.w.Write(b); err != nil {
				broken = true
			}
		}
	}
}

// Write queues a copy of b; it never fails and never blocks.
func (a *asyncWriter) Write(b []byte) (int, error) {
	c := append([]byte(nil), b...)
	select {
	case a.q <- c:
	default:
	}
	return len(b), nil
}

// Close lets the queue drain for at most outputDrain and closes w.
func (a *asyncWriter) Close() error {
	a.once.Do(func() { close(a.q) })
	select {
	case <-a.done:
	case <-time.After(outputDrain):
	}
	return a.w.Close()
}
