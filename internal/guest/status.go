package guest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"syscall"

	"github.com/pettyvm/petty/agent/wire"
)

// statusError is an error with a status code for the host.
type statusError struct{ st wire.Status }

func (e *statusError) Error() string { return fmt.Sprintf("%s: %s", e.st.Code, e.st.Message) }

// errorf returns a statusError with code.
func errorf(code wire.Code, format string, args ...any) error {
	return &statusError{wire.Status{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// toStatus converts a handler's error into the status sent to the host.
func toStatus(err error) wire.Status {
	if err == nil {
		return wire.Status{}
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.st
	}
	code := wire.Unknown
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		code = wire.NotFound
	case errors.Is(err, fs.ErrPermission):
		code = wire.PermissionDenied
	case errors.Is(err, fs.ErrExist):
		code = wire.AlreadyExists
	case errors.Is(err, syscall.EISDIR), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENOTEMPTY):
		code = wire.FailedPrecondition
	case errors.Is(err, fs.ErrInvalid), errors.Is(err, syscall.EINVAL):
		code = wire.InvalidArgument
	case errors.Is(err, context.Canceled):
		code = wire.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = wire.DeadlineExceeded
	}
	msg := err.Error()
	var pe *fs.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error() // the client adds op and path back
	}
	return wire.Status{Code: code, Message: msg}
}
