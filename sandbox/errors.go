package sandbox

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned for an unknown or destroyed sandbox.
	ErrNotFound = errors.New("sandbox: no such sandbox")
	// ErrNoProcess is returned for an unknown background process id.
	ErrNoProcess = errors.New("sandbox: no such process")
	// ErrClosed is returned by calls on a closed Manager or a destroyed Sandbox.
	ErrClosed = errors.New("sandbox: closed")
	// ErrLimit is matched (errors.Is) by every *LimitError.
	ErrLimit = errors.New("sandbox: limit reached")
	// ErrInvalid is matched (errors.Is) by every *InvalidError.
	ErrInvalid = errors.New("sandbox: invalid argument")
	// ErrUnsupported is returned for a feature the guest agent lacks.
	ErrUnsupported = errors.New("sandbox: not supported by the guest agent")
	// ErrTooLarge is returned by ReadFile for a file over the caller's limit.
	ErrTooLarge = errors.New("sandbox: file too large")
)

// LimitError reports that a sandbox was refused because a Manager limit
// would be exceeded. It names the numbers.
type LimitError struct {
	// Resource is "sandboxes" or "processes" (counts) or "memory" (MiB).
	Resource string
	// Requested is what the new sandbox asked for (1 for the count).
	Requested int
	// InUse is what the live sandboxes (and those being created) hold.
	InUse int
	// Limit is the most the Manager admits.
	Limit int
	// HostMiB and Share explain a memory limit: Limit = Share × HostMiB.
	HostMiB int
	Share   float64
}

// Error implements error.
func (e *LimitError) Error() string {
	if e.Resource == "memory" {
		return fmt.Sprintf("sandbox: memory admission refused: %d MiB requested + %d MiB in use > %d MiB allowed (%.0f%% of %d MiB host memory)",
			e.Requested, e.InUse, e.Limit, e.Share*100, e.HostMiB)
	}
	return fmt.Sprintf("sandbox: too many %s: %d running, at most %d", e.Resource, e.InUse, e.Limit)
}

// Is reports whether target is ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// InvalidError reports an invalid option or argument.
type InvalidError struct {
	// Field names the option ("MemoryMiB", "language").
	Field string
	// Problem says what is wrong with it.
	Problem string
}

// Error implements error.
func (e *InvalidError) Error() string {
	return fmt.Sprintf("sandbox: invalid %s: %s", e.Field, e.Problem)
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }
