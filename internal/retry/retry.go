// Package retry is petty's one retry loop: call a function until it
// succeeds, fails permanently, or its context ends, sleeping with a capped
// exponential backoff in between. Every "dial until the VMM or agent
// answers" loop in petty goes through Do.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backoff describes the waits between attempts: Min first, doubled after
// each attempt, never more than Max.
type Backoff struct {
	Min, Max time.Duration
	// Stop, if not nil, ends the loop early when it is closed (a VMM that
	// exited): Do then returns ErrStopped wrapped with the last error.
	Stop <-chan struct{}
}

// ErrStopped is returned (wrapped) by Do when Backoff.Stop was closed.
var ErrStopped = errors.New("retry: stopped")

// permanent marks an error that must not be retried.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent wraps err so that Do returns it at once instead of retrying.
// Do returns err itself, not the wrapper.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// Do calls f until it returns nil or a Permanent error, or until ctx ends or
// b.Stop is closed. When ctx ends, the error wraps both ctx's error and the
// last attempt's error (unless that already is ctx's error), so that
// errors.Is(err, context.DeadlineExceeded) holds and the cause is kept.
func Do(ctx context.Context, b Backoff, f func(ctx context.Context) error) error {
	delay := b.Min
	if delay <= 0 {
		delay = time.Millisecond
	}
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if p, ok := errors.AsType[*permanent](err); ok {
			return p.err
		}
		if ctx.Err() != nil {
			return ctxError(ctx, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctxError(ctx, err)
		case <-b.Stop:
			t.Stop()
			return fmt.Errorf("%w; last attempt: %w", ErrStopped, err)
		case <-t.C:
		}
		if b.Max > 0 {
			delay = min(2*delay, b.Max)
		} else {
			delay *= 2
		}
	}
}

func ctxError(ctx context.Context, last error) error {
	if errors.Is(last, ctx.Err()) {
		return last
	}
	return fmt.Errorf("%w; last attempt: %w", ctx.Err(), last)
}
