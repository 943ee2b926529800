package sandbox

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
)

// stdinQueue is how many WriteStdin chunks wait for the agent before
// WriteStdin blocks.
const stdinQueue = 16

// stdinPipe is a background process's standard input: WriteStdin queues
// chunks, the agent client reads them. Read returns io.EOF once the pipe is
// closed (CloseStdin) and drained, or at once when stopped (the process
// ended), so the client's stdin goroutine never outlives the process.
type stdinPipe struct {
	ch      chan []byte
	stopped chan struct{}
	stopO   sync.Once

	mu     sync.Mutex // serialises writers and close
	closed bool

	rest []byte // the reader's partly read chunk
}

func newStdinPipe() *stdinPipe {
	return &stdinPipe{ch: make(chan []byte, stdinQueue), stopped: make(chan struct{})}
}

// Read implements io.Reader for the agent client.
func (p *stdinPipe) Read(b []byte) (int, error) {
	if len(p.rest) == 0 {
		select {
		case c, ok := <-p.ch:
			if !ok {
				return 0, io.EOF
			}
			p.rest = c
		case <-p.stopped:
			return 0, io.EOF
		}
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	return n, nil
}

// write queues a copy of b, waiting for room within ctx.
func (p *stdinPipe) write(ctx context.Context, b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("stdin: %w", os.ErrClosed)
	}
	if len(b) == 0 {
		return nil
	}
	select {
	case p.ch <- append([]byte(nil), b...):
		return nil
	case <-p.stopped:
		return os.ErrProcessDone
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close ends the input after what is queued.
func (p *stdinPipe) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	close(p.ch)
	return nil
}

// stop ends Read at once (the process ended).
func (p *stdinPipe) stop() { p.stopO.Do(func() { close(p.stopped) }) }

// stdinOf returns the stdin pipe of the running process pid.
func (s *Sandbox) stdinOf(pid int) (*stdinPipe, error) {
	p, err := s.running(pid)
	if err != nil {
		return nil, err
	}
	if p.stdin == nil {
		return nil, &InvalidError{Field: "stdin", Problem: fmt.Sprintf("process %d was not started with Stdin", pid)}
	}
	return p.stdin, nil
}

// WriteStdin writes data to the standard input of the background process
// pid, started with StartOptions.Stdin. It returns once data is queued for
// the guest (waiting, within ctx, while the queue is full). It fails with
// ErrNoProcess for an unknown pid, os.ErrProcessDone once the process
// ended, os.ErrClosed after CloseStdin, and ErrInvalid for a process
// without stdin.
func (s *Sandbox) WriteStdin(ctx context.Context, pid int, data []byte) error {
	in, err := s.stdinOf(pid)
	if err != nil {
		return err
	}
	if err := in.write(ctx, data); err != nil {
		return fmt.Errorf("sandbox %s: pid %d: %w", s.id, pid, err)
	}
	return nil
}

// CloseStdin closes the standard input of the background process pid once
// what was written reached it; closing twice is not an error.
func (s *Sandbox) CloseStdin(pid int) error {
	in, err := s.stdinOf(pid)
	if err != nil {
		return err
	}
	return in.close()
}
