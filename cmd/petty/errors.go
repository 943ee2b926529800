package main

import "fmt"

// Exit codes of petty itself; run and exec exit with the command's code.
const (
	exitFailure = 1 // petty could not do what was asked
	exitUsage   = 2 // bad command line
	// A signal that ended petty gives 128 + its number (interruptedError).
)

// usageError is a bad command line: petty prints it with a usage hint and
// exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a *usageError.
func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// exitCode asks petty to exit with code without printing anything more: the
// guest command's status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
