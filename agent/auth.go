package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/pettyvm/petty/agent/wire"
)

// Authentication, the host's side. The exchange (an auth line carrying the
// VM's per-boot token, answered by an OK line) is described in package
// wire; the agent's side lives with the agent.

// MaxTokenLen bounds a token's length in bytes.
const MaxTokenLen = wire.MaxTokenLen

// ErrAuth is returned (wrapped) when a connection's authentication fails:
// the peer refused the token, answered something else, did not answer in
// time, or sent a bad auth line. It is wire.ErrAuth.
var ErrAuth = wire.ErrAuth

// ErrRefused is returned (wrapped) by Authenticate when the agent refused
// the token: it closed the connection, or on a serial port answered the
// refusal line. It wraps ErrAuth. Retrying with the same token cannot help.
var ErrRefused = fmt.Errorf("%w: token refused", ErrAuth)

// Authenticate runs the host side of the auth exchange on conn, freshly
// connected to the agent (on a serial port: after SerialHandshake): it
// writes the auth line with token and waits for the agent's OK, reading no
// more than the OK line. ctx bounds the exchange through conn's deadlines,
// which are cleared before returning. A refusal, a close or any other
// answer returns an error wrapping ErrAuth; on every failure conn is
// closed. Afterwards conn carries frames: pass it to NewClient.
func Authenticate(ctx context.Context, conn net.Conn, token string) (retErr error) {
	defer func() {
		if retErr != nil {
			conn.Close()
		}
	}()
	if err := wire.CheckToken(token); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// ctx ending aborts the blocked read or write; a connection without
	// deadlines is closed instead.
	stop := context.AfterFunc(ctx, func() {
		if conn.SetDeadline(time.Now()) != nil {
			conn.Close()
		}
	})
	defer func() {
		stop()
		if retErr != nil {
			if err := ctx.Err(); err != nil {
				retErr = fmt.Errorf("%w: %w", ErrAuth, err)
			} else if _, ok := ctx.Deadline(); ok && errors.Is(retErr, os.ErrDeadlineExceeded) {
				// ctx's deadline, set on conn, passed before its timer fired.
				retErr = fmt.Errorf("%w: %w", ErrAuth, context.DeadlineExceeded)
			}
		}
		conn.SetDeadline(time.Time{})
	}()
	if _, err := io.WriteString(conn, wire.AuthPrefix+token+"\n"); err != nil {
		return fmt.Errorf("%w: sending the token: %w", ErrAuth, err)
	}
	var got [len(wire.AuthOK)]byte
	n, err := io.ReadFull(conn, got[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the agent closed the connection after %q: %w", ErrRefused, got[:n], err)
		}
		return fmt.Errorf("%w: reading the answer: %w", ErrAuth, err)
	}
	if string(got[:]) == wire.AuthNo {
		return ErrRefused
	}
	if string(got[:]) != wire.AuthOK {
		return fmt.Errorf("%w: unexpected answer %q", ErrAuth, got[:])
	}
	return nil
}
