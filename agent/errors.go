package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pettyvm/petty/agent/wire"
)

// ErrClosed is returned (wrapped) by Client methods once the connection to
// the agent is closed or lost.
var ErrClosed = errors.New("agent: connection closed")

// ErrProtocol is returned (wrapped) when the agent broke the protocol: a
// malformed or oversized frame, a frame for a stream the host never opened,
// more data than the credits the host granted, or more unread frames than a
// stream buffers. A violation on one stream fails that call; one on the
// connection as a whole also closes it, and the error then wraps ErrClosed
// too.
var ErrProtocol = errors.New("agent: protocol violation by the agent")

// ErrTooLarge is returned (wrapped in an *fs.PathError) by ReadFile for a
// file larger than the host's limit (see WithMaxReadFile).
var ErrTooLarge = errors.New("agent: over the host's size limit")

// Code is the status code of a failed call, as the agent reports it.
type Code = wire.Code

// RemoteError is an error reported by the agent. errors.Is maps its code to
// the standard errors: NotFound to fs.ErrNotExist, PermissionDenied to
// fs.ErrPermission, AlreadyExists to fs.ErrExist, InvalidArgument to
// fs.ErrInvalid and Unimplemented to errors.ErrUnsupported.
type RemoteError struct {
	Code    Code
	Message string
}

// Error formats the code and the agent's message.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("agent: %s: %s", e.Code, e.Message)
}

// Is reports whether the remote error corresponds to target.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case wire.NotFound:
		return target == fs.ErrNotExist
	case wire.PermissionDenied:
		return target == fs.ErrPermission
	case wire.AlreadyExists:
		return target == fs.ErrExist
	case wire.Unimplemented:
		return target == errors.ErrUnsupported
	case wire.InvalidArgument:
		return target == fs.ErrInvalid
	}
	return false
}

// ExitError reports a command that did not exit 0, was killed, or had its
// output truncated.
type ExitError struct {
	// Code is the exit status, or -1 when the process was killed by a signal.
	Code int
	// Signal names the signal that killed the process ("SIGKILL"), if any.
	Signal string
	// Truncated reports that output beyond Cmd.MaxOutput (or, for Output,
	// the host's limit) was dropped.
	Truncated bool
	// TimedOut reports that Cmd.Timeout expired and the process group was
	// killed.
	TimedOut bool
	// Stderr holds the standard error output when collected by Output.
	Stderr []byte
}

// Error describes the exit like os/exec does ("exit status 1",
// "signal: SIGKILL").
func (e *ExitError) Error() string {
	var s string
	switch {
	case e.Signal != "":
		s = "signal: " + e.Signal
	default:
		s = fmt.Sprintf("exit status %d", e.Code)
	}
	if e.TimedOut {
		s += " (timed out)"
	}
	if e.Truncated {
		s += " (output truncated)"
	}
	return s
}

// statusError turns a non-OK status into a *RemoteError.
func statusError(st wire.Status) error {
	if st.Code == wire.OK {
		return nil
	}
	return &RemoteError{Code: st.Code, Message: st.Message}
}

// pathError wraps an error for a file operation on path; connection and
// context errors are returned as they are.
func pathError(op, path string, err error) error {
	if err == nil || errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}
