package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Authentication.
//
// Every connection to the agent (and to a Mux) starts with one line from
// the host, before any frame (on a serial port: right after the READY
// line), answered by one line from the agent:
//
//	host:  PETTY-AUTH <token>\n
//	agent: PETTY-OK\n    (or, refusing a serial session, PETTY-NO\n)
//
// The token is a per-boot secret the guest learns from its kernel command
// line (petty.token=, see BootToken) or, for an agent run on a host, from
// --token-file. An agent without a token accepts any token, but still
// requires the line. A wrong token, or anything else, makes the agent close
// the connection without serving it.
const (
	authPrefix = "PETTY-AUTH "
	authOK     = "PETTY-OK\n"
	// authNo refuses a serial session (a serial port never closes), as
	// long as authOK so that Authenticate reads either whole.
	authNo = "PETTY-NO\n"
	// MaxTokenLen bounds a token's length in bytes.
	MaxTokenLen = 128
	maxAuthLine = len(authPrefix) + MaxTokenLen
	// authTimeout bounds how long the agent waits for the auth line on a
	// stream connection.
	authTimeout = 10 * time.Second
)

// ErrAuth is returned (wrapped) when a connection's authentication fails:
// the peer refused the token, answered something else, did not answer in
// time, or sent a bad auth line.
var ErrAuth = errors.New("agent: authentication failed")

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
	if err := checkToken(token); err != nil {
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
	if _, err := io.WriteString(conn, authPrefix+token+"\n"); err != nil {
		return fmt.Errorf("%w: sending the token: %w", ErrAuth, err)
	}
	var got [len(authOK)]byte
	n, err := io.ReadFull(conn, got[:])
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: the agent closed the connection after %q: %w", ErrRefused, got[:n], err)
		}
		return fmt.Errorf("%w: reading the answer: %w", ErrAuth, err)
	}
	if string(got[:]) == authNo {
		return ErrRefused
	}
	if string(got[:]) != authOK {
		return fmt.Errorf("%w: unexpected answer %q", ErrAuth, got[:])
	}
	return nil
}

// checkToken rejects tokens that cannot travel on one auth line (or on a
// kernel command line).
func checkToken(token string) error {
	if len(token) > MaxTokenLen {
		return fmt.Errorf("%w: token is %d bytes, over %d", ErrAuth, len(token), MaxTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f || c == '"' {
			return fmt.Errorf("%w: token has a byte %s that is not printable ASCII", ErrAuth, strconv.QuoteRune(rune(c)))
		}
	}
	return nil
}

// CheckAuth runs the agent side of the auth exchange: it reads the first
// line from r one byte at a time (so nothing after it is consumed), at most
// the longest valid auth line, and when it carries token (compared in
// constant time; an empty token accepts any) writes the OK line to w. It
// returns an error wrapping ErrAuth otherwise; the caller then closes the
// connection without serving it and without answering.
func CheckAuth(r io.Reader, w io.Writer, token string) error {
	line, err := readAuthLine(r)
	if err != nil {
		return err
	}
	if !authLineOK(line, token) {
		return fmt.Errorf("%w: bad or wrong auth line", ErrAuth)
	}
	if _, err := io.WriteString(w, authOK); err != nil {
		return fmt.Errorf("%w: answering: %w", ErrAuth, err)
	}
	return nil
}

// readAuthLine reads one line (without its newline) of at most maxAuthLine
// bytes.
func readAuthLine(r io.Reader) ([]byte, error) {
	line := make([]byte, 0, maxAuthLine)
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: reading the auth line: %w", ErrAuth, err)
		}
		if b[0] == '\n' {
			return line, nil
		}
		if len(line) == maxAuthLine {
			return nil, fmt.Errorf("%w: auth line longer than %d bytes", ErrAuth, maxAuthLine)
		}
		line = append(line, b[0])
	}
}

// authLineOK reports whether line (without its newline) is an auth line
// carrying token, or any valid auth line when token is empty.
func authLineOK(line []byte, token string) bool {
	got, ok := bytes.CutPrefix(line, []byte(authPrefix))
	if !ok || checkToken(string(got)) != nil {
		return false
	}
	if token == "" {
		return true
	}
	return subtle.ConstantTimeCompare(got, []byte(token)) == 1
}

// BootToken returns the last petty.token= of a kernel command line
// (/proc/cmdline's contents), or "" when there is none.
func BootToken(cmdline string) string {
	tok := ""
	for _, arg := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(arg, "petty.token="); ok {
			tok = v
		}
	}
	return tok
}
