package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"syscall"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrClosed is returned (wrapped) by Client methods once the connection to
// the agent is closed or lost.
var ErrClosed = errors.New("agent: connection closed")

// RemoteError is an error reported by the agent. errors.Is maps its code to
// the standard errors: NotFound to fs.ErrNotExist, PermissionDenied to
// fs.ErrPermission, AlreadyExists to fs.ErrExist and Unimplemented to
// errors.ErrUnsupported.
type RemoteError struct {
	Code    codes.Code
	Message string
}

// Error formats the code and the agent's message.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("agent: %s: %s", e.Code, e.Message)
}

// Is reports whether the remote error corresponds to target.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case codes.NotFound:
		return target == fs.ErrNotExist
	case codes.PermissionDenied:
		return target == fs.ErrPermission
	case codes.AlreadyExists:
		return target == fs.ErrExist
	case codes.Unimplemented:
		return target == errors.ErrUnsupported
	case codes.InvalidArgument:
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
	// Truncated reports that output beyond Cmd.MaxOutput was dropped.
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

// toStatus converts a server-side error into a ttrpc status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		code = codes.NotFound
	case errors.Is(err, fs.ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, fs.ErrExist):
		code = codes.AlreadyExists
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENOTEMPTY):
		code = codes.FailedPrecondition
	case errors.Is(err, fs.ErrInvalid), errors.Is(err, syscall.EINVAL):
		code = codes.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error() // the client adds op and path back
	}
	return status.Error(code, msg)
}

// fromRemote converts an error from a ttrpc call into this package's errors.
func fromRemote(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ttrpc.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if st, ok := status.FromError(err); ok {
		return &RemoteError{Code: st.Code(), Message: st.Message()}
	}
	return err
}

// pathError wraps a remote error for a file operation on path.
func pathError(op, path string, err error) error {
	err = fromRemote(err)
	if errors.Is(err, ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}
