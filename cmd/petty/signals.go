package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// stopSignals are the signals that end a petty command cleanly: the VM it
// owns is destroyed, and petty exits with 128 + the signal's number.
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// interruptible returns a ctx cancelled by one of stopSignals, a function
// that returns the signal that did it (0 while none did), and a stop
// function that restores the default signal handling. Until stop, further
// signals are swallowed, so that cleanup after the first one runs to its
// end.
func interruptible(parent context.Context) (ctx context.Context, caught func() syscall.Signal, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, stopSignals...)
	var got atomic.Int32
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			if n, ok := s.(syscall.Signal); ok {
				got.Store(int32(n))
			}
			cancel()
		case <-done:
		}
	}()
	return ctx, func() syscall.Signal { return syscall.Signal(got.Load()) }, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// errInterrupted is matched (errors.Is) by every *interruptedError.
var errInterrupted = errors.New("interrupted")

// interruptedError reports that a signal ended the command: petty exits
// with 128 + its number, as a shell reports a command a signal killed.
type interruptedError struct{ sig syscall.Signal }

func (e *interruptedError) Error() string {
	return fmt.Sprintf("interrupted by %s", signalName(e.sig))
}

// Is makes errors.Is(err, errInterrupted) hold.
func (e *interruptedError) Is(target error) bool { return target == errInterrupted }

// exitCode is 128 + the signal's number.
func (e *interruptedError) exitCode() int { return exitSignalBase + int(e.sig) }

// interruptedBy returns the error for an interrupt by sig; with sig 0 (no
// signal seen) it reports SIGINT.
func interruptedBy(sig syscall.Signal) error {
	if sig == 0 {
		sig = syscall.SIGINT
	}
	return &interruptedError{sig: sig}
}

// whenInterrupted replaces *errp by the interrupt's error when caught
// reports a signal. Use: defer whenInterrupted(caught, &retErr).
func whenInterrupted(caught func() syscall.Signal, errp *error) {
	if s := caught(); s != 0 {
		*errp = interruptedBy(s)
	}
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGQUIT:
		return "SIGQUIT"
	}
	return s.String()
}
