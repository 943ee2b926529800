package agent

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// The agent's side of the auth exchange (see auth.go).

// RunOption configures Run.
type RunOption func(*Server)

// WithToken makes Run's server require token on every connection (see
// Authenticate); an empty token accepts any. Inside a guest (PID 1) without
// this option, the token comes from the kernel command line's petty.token=.
func WithToken(token string) RunOption {
	return func(s *Server) { s.Token = token }
}

// ReadTokenFile reads a token file (petty-agent --token-file): the token,
// optionally followed by a newline.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("agent: token file: %w", err)
	}
	tok := strings.TrimSuffix(string(b), "\n")
	if tok == "" {
		return "", fmt.Errorf("%w: token file %s is empty", ErrAuth, path)
	}
	if err := checkToken(tok); err != nil {
		return "", fmt.Errorf("token file %s: %w", path, err)
	}
	return tok, nil
}

// applyRunOptions sets up s's token for Run: the options', or else, for a
// guest's init, the kernel command line's.
func (s *Server) applyRunOptions(opts []RunOption, log *slog.Logger) {
	for _, o := range opts {
		o(s)
	}
	if s.Token != "" || s.guest == nil {
		return
	}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		log.Warn("petty.token= not read; accepting any token", "err", err)
		return
	}
	s.Token = BootToken(string(b))
	if s.Token == "" {
		log.Warn("no petty.token= on the kernel command line; accepting any token")
	}
}

// authConn checks the auth line before the first byte of a stream
// connection is served. Its error wraps io.ErrUnexpectedEOF so that the
// RPC server treats it as the peer going away and closes the connection.
type authConn struct {
	net.Conn
	token string
	log   *slog.Logger

	once sync.Once
	err  error
}

// authenticated wraps an accepted stream connection so that it is served
// only after a valid auth line.
func (s *Server) authenticated(c net.Conn) net.Conn {
	return &authConn{Conn: c, token: s.Token, log: s.logger()}
}

func (c *authConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		c.Conn.SetReadDeadline(time.Now().Add(authTimeout))
		if err := CheckAuth(c.Conn, c.Conn, c.token); err != nil {
			c.log.Warn("refusing connection", "remote", c.Conn.RemoteAddr(), "err", err)
			c.err = fmt.Errorf("%w: %w", err, io.ErrUnexpectedEOF)
		}
		c.Conn.SetReadDeadline(time.Time{})
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// serialAuth reads a serial session's auth line, after the READY line for
// nonce: repeats of the current sync line are skipped. It reports ok once
// the auth line is accepted (the OK line written to w); otherwise next is
// the nonce of a new host's sync line, or "" to go back to scanning. A
// non-nil error means reading or writing the port failed.
func (s *Server) serialAuth(br *bufio.Reader, w io.Writer, nonce string) (next string, ok bool, err error) {
	for {
		line, err := readSerialLine(br)
		if err != nil {
			return "", false, err
		}
		if n := parseSync(line); n == nonce {
			continue // a repeat sent before the host saw READY
		} else if n != "" {
			return n, false, nil
		}
		if !authLineOK(line, s.Token) {
			s.logger().Warn("refusing serial session: bad or wrong auth line")
			if _, err := io.WriteString(w, authNo); err != nil {
				return "", false, err
			}
			return "", false, nil
		}
		if _, err := io.WriteString(w, authOK); err != nil {
			return "", false, err
		}
		return "", true, nil
	}
}

// readSerialLine reads one line of at most maxAuthLine bytes; a longer line
// is returned truncated to its last maxSyncLine bytes (never a valid auth
// line, and a sync line at its end still counts).
func readSerialLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	long := false
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			if long {
				line = append([]byte{0}, line...) // invalid as an auth line
			}
			return line, nil
		}
		line = append(line, b)
		if len(line) > 2*maxAuthLine {
			line = append(line[:0], line[len(line)-maxSyncLine:]...)
			long = true
		}
	}
}

// writeFunc adapts a write method to io.Writer.
type writeFunc func([]byte) (int, error)

func (f writeFunc) Write(p []byte) (int, error) { return f(p) }
