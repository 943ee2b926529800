package sandbox

import (
	"context"
	"sync"
)

// FollowBuffer is how many Output items a follower may have unread; when
// it falls further behind, output is dropped for it (and counted in the
// next item's Dropped) rather than slowing the process or the others.
const FollowBuffer = 64

// Output is an item of a followed process's output.
type Output struct {
	// Stderr tells which stream Data is from (stdout when false).
	Stderr bool
	// Data is the output, in order within its stream. It is shared by the
	// followers: read it, do not modify it.
	Data []byte
	// Dropped counts the bytes (of either stream) this follower missed just
	// before this item because it read too slowly. The last item may carry
	// Dropped alone, without Data.
	Dropped int64
}

// follower is one Follow subscription.
type follower struct {
	ch      chan Output
	dropped int64
	stop    func() bool // deregisters the ctx watch
}

// outputFan keeps a process's output in two rings and sends it to the
// followers.
type outputFan struct {
	mu        sync.Mutex
	stdout    *ring
	stderr    *ring
	followers map[*follower]struct{}
	ended     bool
}

func newOutputFan(size int) *outputFan {
	return &outputFan{stdout: newRing(size), stderr: newRing(size), followers: map[*follower]struct{}{}}
}

// writer returns the writer of one stream.
func (o *outputFan) writer(stderr bool) writerFunc {
	return func(b []byte) (int, error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if stderr {
			o.stderr.Write(b)
		} else {
			o.stdout.Write(b)
		}
		if len(o.followers) == 0 {
			return len(b), nil
		}
		data := append([]byte(nil), b...)
		for f := range o.followers {
			// The last slot is kept for end's marker: the only sends are
			// under o.mu, so a length below cap-1 means room.
			if len(f.ch) < cap(f.ch)-1 {
				f.ch <- Output{Stderr: stderr, Data: data, Dropped: f.dropped}
				f.dropped = 0
			} else {
				f.dropped += int64(len(b))
			}
		}
		return len(b), nil
	}
}

// end closes every follower's channel once the process ended, after a
// last item carrying what it still missed.
func (o *outputFan) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended = true
	for f := range o.followers {
		o.drop(f)
	}
}

// drop ends the subscription f; o.mu is held.
func (o *outputFan) drop(f *follower) {
	if _, ok := o.followers[f]; !ok {
		return
	}
	delete(o.followers, f)
	f.stop()
	if f.dropped > 0 {
		f.ch <- Output{Dropped: f.dropped}
	}
	close(f.ch)
}

// Follow subscribes to the output of the background process pid from now
// on. It returns the process as it is now (its buffered output is exactly
// what precedes the first item) and a channel of its further output, which
// is closed once the process ended (its status is then in Process), or
// when ctx ends. A follower that reads too slowly misses output (see
// Output.Dropped) but never blocks the process or other followers.
func (s *Sandbox) Follow(ctx context.Context, pid int) (ProcessInfo, <-chan Output, error) {
	p, err := s.process(pid)
	if err != nil {
		return ProcessInfo{}, nil, err
	}
	f := &follower{ch: make(chan Output, FollowBuffer)}
	o := p.out
	o.mu.Lock()
	defer o.mu.Unlock()
	pi := p.info()
	if o.ended {
		close(f.ch)
		return pi, f.ch, nil
	}
	o.followers[f] = struct{}{}
	f.stop = context.AfterFunc(ctx, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.drop(f)
	})
	return pi, f.ch, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
