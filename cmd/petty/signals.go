package main

import (
	"context"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// interruptible returns a ctx cancelled by SIGINT or SIGTERM, a function
// that reports whether that happened, and a stop function that restores the
// default signal handling. Until stop, further signals are swallowed, so
// that cleanup after the first one runs to its end.
func interruptible(parent context.Context) (ctx context.Context, interrupted func() bool, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var got atomic.Bool
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			got.Store(true)
			cancel()
		case <-done:
		}
	}()
	return ctx, got.Load, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}
