package vsock

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// ErrHandshake reports that Firecracker did not answer "CONNECT <port>" with
// "OK <host_port>\n". Errors that wrap it quote what was read (truncated);
// when the connection was closed before any answer, which is what Firecracker
// does when no guest process listens on the port, they also wrap io.EOF.
var ErrHandshake = errors.New("vsock: handshake failed")

// opError returns err as a *net.OpError of network "vsock". An inner
// *net.OpError (of network "unix") is replaced by its cause, so that the
// message does not repeat the operation.
func opError(op string, addr *Addr, err error) error {
	if inner, ok := err.(*net.OpError); ok {
		err = inner.Err
	}
	return &net.OpError{Op: op, Net: "vsock", Addr: addr, Err: err}
}

// ctxCause returns ctx's error in place of err when err is the I/O failure
// caused by ctx ending: a deadline set from ctx, or one set in the past when
// ctx was canceled. Otherwise it returns err.
func ctxCause(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	// The socket's deadline may fire just before ctx's own timer does.
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}
