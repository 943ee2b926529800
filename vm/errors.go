package vm

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

var (
	// ErrInvalidConfig is matched (errors.Is) by every *FieldError.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotRunning is returned by calls that need a running (or paused) VM.
	ErrNotRunning = errors.New("vm is not running")
	// ErrAlreadyRunning is returned by Start when the VM is starting or running.
	ErrAlreadyRunning = errors.New("vm is already running")
	// ErrNotPaused is returned by Resume when the VM is not paused.
	ErrNotPaused = errors.New("vm is not paused")
	// ErrDestroyed is returned by every call on a destroyed Machine.
	ErrDestroyed = errors.New("vm is destroyed")
	// ErrNoVsock is returned by DialVsock when the Config has no vsock device.
	ErrNoVsock = errors.New("vm has no vsock device")
	// ErrKilled is wrapped by Shutdown's error when the VMM did not stop by the
	// deadline and had to be killed with SIGKILL (the VM is stopped all the same).
	ErrKilled = errors.New("vmm killed after the shutdown deadline")
	// ErrPathInUse is returned by Start when a path the VMM must create
	// (a user-supplied Vsock.Path) already exists and this Machine did not
	// create it: vm never removes a file it did not create.
	ErrPathInUse = errors.New("already exists and was not created by this vm")
	// ErrNoSuchDevice is wrapped by the *FieldError of a Network.Tap that
	// names no network device.
	ErrNoSuchDevice = errors.New("no such network device")
)

// FieldError reports one invalid field of a Config.
type FieldError struct {
	// Field is the field's path, e.g. "Drives[1].ID".
	Field string
	// Problem says what is wrong with it.
	Problem string
	// Err is the underlying error, if any (e.g. from os.Stat).
	Err error
}

// Error implements error.
func (e *FieldError) Error() string {
	msg := "vm: config: " + e.Field + ": " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalidConfig.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidConfig }

// ExitError reports that the VMM process exited, with the tail of what it
// printed (the guest's serial console and the VMM's own messages).
type ExitError struct {
	// State is the exited process's state.
	State *os.ProcessState
	// Console is the tail of the VMM's stdout and stderr.
	Console string
}

// Error implements error.
func (e *ExitError) Error() string {
	msg := "vmm exited: " + e.State.String()
	if tail := strings.TrimSpace(e.Console); tail != "" {
		msg += "\n--- console tail ---\n" + tail
	}
	return msg
}

// opError wraps err as a failure of operation op on machine id.
func opError(op, id string, err error) error {
	return fmt.Errorf("vm %s: %s: %w", id, op, err)
}
