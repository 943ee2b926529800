package wire

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Authentication.
//
// Every connection to the agent (and to a host's agent.Mux) starts with one
// line from the host, before any frame (on a serial port: right after the
// READY line), answered by one line from the agent:
//
//	host:  PETTY-AUTH <token>\n
//	agent: PETTY-OK\n    (or, refusing a serial session, PETTY-NO\n)
//
// The token is a per-boot secret the guest learns from its kernel command
// line (petty.token=, see BootToken) or, for an agent run on a host, from
// --token-file (see ReadTokenFile). An agent without a token accepts any
// token, but still requires the line. A wrong token, or anything else,
// makes the agent close the connection without serving it.
const (
	// AuthPrefix starts the host's auth line.
	AuthPrefix = "PETTY-AUTH "
	// AuthOK is the agent's answer accepting the auth line.
	AuthOK = "PETTY-OK\n"
	// AuthNo refuses a serial session (a serial port never closes); it is
	// as long as AuthOK so that the host reads either whole.
	AuthNo = "PETTY-NO\n"
	// MaxTokenLen bounds a token's length in bytes.
	MaxTokenLen = 128
	// MaxAuthLine is the longest valid auth line, without its newline.
	MaxAuthLine = len(AuthPrefix) + MaxTokenLen
	// AuthTimeout bounds how long a server waits for the auth line on a
	// stream connection.
	AuthTimeout = 10 * time.Second
	// TokenArg is the kernel command line parameter carrying the token.
	TokenArg = "petty.token="
)

// ErrAuth is returned (wrapped) when a connection's authentication fails:
// the peer refused the token, answered something else, did not answer in
// time, or sent a bad auth line.
var ErrAuth = errors.New("agent: authentication failed")

// CheckToken rejects tokens that cannot travel on one auth line (or on a
// kernel command line); the error wraps ErrAuth.
func CheckToken(token string) error {
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

// CheckAuth runs the serving side of the auth exchange: it reads the first
// line from r one byte at a time (so nothing after it is consumed), at most
// the longest valid auth line, and when it carries token (compared in
// constant time; an empty token accepts any) writes AuthOK to w. It returns
// an error wrapping ErrAuth otherwise; the caller then closes the
// connection without serving it and without answering.
func CheckAuth(r io.Reader, w io.Writer, token string) error {
	line, err := ReadAuthLine(r)
	if err != nil {
		return err
	}
	if !AuthLineOK(line, token) {
		return fmt.Errorf("%w: bad or wrong auth line", ErrAuth)
	}
	if _, err := io.WriteString(w, AuthOK); err != nil {
		return fmt.Errorf("%w: answering: %w", ErrAuth, err)
	}
	return nil
}

// ReadAuthLine reads one line (returned without its newline) of at most
// MaxAuthLine bytes, one byte at a time; the error wraps ErrAuth.
func ReadAuthLine(r io.Reader) ([]byte, error) {
	line := make([]byte, 0, MaxAuthLine)
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("%w: reading the auth line: %w", ErrAuth, err)
		}
		if b[0] == '\n' {
			return line, nil
		}
		if len(line) == MaxAuthLine {
			return nil, fmt.Errorf("%w: auth line longer than %d bytes", ErrAuth, MaxAuthLine)
		}
		line = append(line, b[0])
	}
}

// AuthLineOK reports whether line (without its newline) is an auth line
// carrying token, compared in constant time, or any valid auth line when
// token is empty.
func AuthLineOK(line []byte, token string) bool {
	got, ok := bytes.CutPrefix(line, []byte(AuthPrefix))
	if !ok || CheckToken(string(got)) != nil {
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
		if v, ok := strings.CutPrefix(arg, TokenArg); ok {
			tok = v
		}
	}
	return tok
}

// ReadTokenFile reads a token file (a VM's run dir token, petty-agent
// --token-file): the token, optionally followed by a newline. An empty or
// malformed token is an error wrapping ErrAuth.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("agent: token file: %w", err)
	}
	tok := strings.TrimSuffix(string(b), "\n")
	if tok == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrAuth, path)
	}
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}
