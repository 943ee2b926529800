package vsock

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/pettyvm/petty/internal/retry"
)

// maxAnswerLen bounds the answer line read during the handshake; a valid one,
// "OK 4294967295", is 13 bytes.
const maxAnswerLen = 64

// testHookRetry, when not nil, is called with each failed attempt that
// DialRetry is about to retry. Only tests set it.
var testHookRetry func(error)

// Backoff of DialRetry.
const (
	minRetryDelay = 2 * time.Millisecond
	maxRetryDelay = 100 * time.Millisecond
)

// Dial connects to guest port port through the Firecracker vsock device whose
// uds_path is udsPath, making one attempt. ctx bounds the connect and the
// handshake; it does not affect the returned Conn.
//
// Errors are *net.OpError with Op "dial" and Net "vsock". When the guest does
// not listen on port, the error wraps ErrHandshake and io.EOF (or a reset);
// when the UDS does not exist, syscall.ENOENT.
func Dial(ctx context.Context, udsPath string, port uint32) (*Conn, error) {
	addr := &Addr{Path: udsPath, Port: port}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", udsPath)
	if err != nil {
		return nil, opError("dial", addr, ctxCause(ctx, err))
	}
	c, err := handshake(ctx, nc.(*net.UnixConn), addr)
	if err != nil {
		return nil, opError("dial", addr, err)
	}
	return c, nil
}

// DialRetry is Dial retried, with a backoff from 2ms to 100ms, while the UDS
// is missing or refuses connections, or while Firecracker closes the
// connection before answering (the guest is not listening on port yet). It
// gives up on any other error, or when ctx ends: then the error wraps ctx's
// error and that of the last attempt.
func DialRetry(ctx context.Context, udsPath string, port uint32) (*Conn, error) {
	var (
		c         *Conn
		last, cur error // the last error not caused by ctx, and the latest
		cerr      error // how ctx ended, once it has
	)
	err := retry.Do(ctx, retry.Backoff{Min: minRetryDelay, Max: maxRetryDelay}, func(ctx context.Context) error {
		var err error
		c, err = Dial(ctx, udsPath, port)
		if err == nil {
			return nil
		}
		if cerr = ctxEnded(ctx, err); cerr != nil {
			cur = err
			return retry.Permanent(err)
		}
		if !retryable(err) {
			return retry.Permanent(err)
		}
		last, cur = err, err
		if testHookRetry != nil {
			testHookRetry(err)
		}
		return err
	})
	switch {
	case err == nil:
		return c, nil
	case cerr == nil && ctx.Err() != nil:
		cerr = ctx.Err()
	}
	if cerr != nil {
		return nil, retryError(cerr, udsPath, port, last, cur)
	}
	return nil, err
}

// ctxEnded returns ctx's error, or context.DeadlineExceeded when the
// attempt's error says ctx's deadline passed before ctx's own timer fired
// (the dialer's copy of the deadline can fire first); nil while ctx lasts.
func ctxEnded(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, context.DeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// retryError is DialRetry's error once ctx ended with cerr: cerr and the
// error of the last attempt that did not fail because of ctx.
func retryError(cerr error, udsPath string, port uint32, last, cur error) error {
	if last == nil || !errors.Is(cur, cerr) {
		last = cur
	}
	if errors.Is(last, cerr) {
		return last
	}
	if oe, ok := last.(*net.OpError); ok {
		last = oe.Err
	}
	return &net.OpError{
		Op: "dial", Net: "vsock", Addr: &Addr{Path: udsPath, Port: port},
		Err: fmt.Errorf("%w; last attempt: %w", cerr, last),
	}
}

// retryable reports whether err means that the vsock device or the guest's
// listener is not ready yet.
func retryable(err error) bool {
	for _, target := range []error{
		syscall.ENOENT,       // the UDS does not exist yet
		syscall.ECONNREFUSED, // nobody listens on the UDS (yet)
		syscall.EAGAIN,       // the UDS listener's backlog is full
		io.EOF,               // Firecracker closed: the guest does not listen on port
		syscall.ECONNRESET,
		syscall.EPIPE,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// handshake asks Firecracker to forward uc to addr.Port and reads its answer.
// It closes uc on failure.
func handshake(ctx context.Context, uc *net.UnixConn, addr *Addr) (_ *Conn, retErr error) {
	defer func() {
		if retErr != nil {
			uc.Close()
		}
	}()

	if dl, ok := ctx.Deadline(); ok {
		if err := uc.SetDeadline(dl); err != nil {
			return nil, err
		}
	}
	// On cancellation, a deadline in the past unblocks the write or read.
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(uc, "CONNECT "+strconv.FormatUint(uint64(addr.Port), 10)+"\n"); err != nil {
		return nil, ctxCause(ctx, err)
	}
	br := bufio.NewReader(uc)
	hostPort, err := readAnswer(br)
	if !stop() {
		// ctx ended: the deadline is, or is about to be, in the past.
		return nil, ctxCause(ctx, err)
	}
	if err != nil {
		return nil, ctxCause(ctx, err)
	}
	if err := uc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &Conn{
		conn:   uc,
		local:  &Addr{Path: addr.Path, Port: hostPort},
		remote: addr,
		br:     br,
	}, nil
}

// readAnswer reads Firecracker's "OK <host_port>\n" from br, byte by byte so
// that the bytes after it stay in br, and returns host_port.
func readAnswer(br *bufio.Reader) (uint32, error) {
	var line []byte
	for {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			if len(line) == 0 {
				return 0, fmt.Errorf("%w: connection closed without an answer (guest not listening?): %w", ErrHandshake, io.EOF)
			}
			return 0, fmt.Errorf("%w: connection closed after %q: %w", ErrHandshake, line, io.ErrUnexpectedEOF)
		}
		if err != nil {
			// A deadline error is replaced with ctx's by the caller.
			return 0, fmt.Errorf("%w: reading the answer: %w", ErrHandshake, err)
		}
		if b == '\n' {
			break
		}
		line = append(line, b)
		if len(line) >= maxAnswerLen {
			return 0, fmt.Errorf("%w: answer too long: %q...", ErrHandshake, line)
		}
	}
	rest, ok := bytes.CutPrefix(line, []byte("OK "))
	if !ok {
		return 0, fmt.Errorf("%w: unexpected answer %q", ErrHandshake, line)
	}
	p, err := strconv.ParseUint(string(rest), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: bad host port in answer %q", ErrHandshake, line)
	}
	return uint32(p), nil
}
