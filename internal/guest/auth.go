package guest

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/pettyvm/petty/agent/wire"
)

// The agent's side of the auth exchange (described in package wire; the
// host's side is agent.Authenticate).

// RunOption configures Run.
type RunOption func(*Server)

// WithToken makes Run's server require token on every connection (see
// agent.Authenticate); an empty token accepts any. Inside a guest (PID 1)
// without this option, the token comes from the kernel command line's
// petty.token=.
func WithToken(token string) RunOption {
	return func(s *Server) { s.Token = token }
}

// ReadTokenFile reads a token file (petty-agent --token-file): the token,
// optionally followed by a newline. See wire.ReadTokenFile.
func ReadTokenFile(path string) (string, error) { return wire.ReadTokenFile(path) }

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
	s.Token = wire.BootToken(string(b))
	if s.Token == "" {
		log.Warn("no petty.token= on the kernel command line; accepting any token")
	}
}

// authenticate runs the agent's side of the auth exchange on a freshly
// accepted stream connection, within wire.AuthTimeout. It reports whether
// the connection may be served; on false the caller closes it without
// answering.
func (s *Server) authenticate(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(wire.AuthTimeout))
	if err := wire.CheckAuth(c, c, s.Token); err != nil {
		s.logger().Warn("refusing connection", "remote", c.RemoteAddr(), "err", err)
		return false
	}
	c.SetReadDeadline(time.Time{})
	return true
}

// serialAuth reads a serial session's auth line, after the READY line for
// nonce: repeats of the current sync line are skipped. It reports ok once
// the auth line is accepted (wire.AuthOK written to w); otherwise next is
// the nonce of a new host's sync line, or "" to go back to scanning. A
// refused line is answered wire.AuthNo (a serial port never closes). A
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
		if !wire.AuthLineOK(line, s.Token) {
			s.logger().Warn("refusing serial session: bad or wrong auth line")
			if _, err := io.WriteString(w, wire.AuthNo); err != nil {
				return "", false, err
			}
			return "", false, nil
		}
		if _, err := io.WriteString(w, wire.AuthOK); err != nil {
			return "", false, err
		}
		return "", true, nil
	}
}

// readSerialLine reads one line of at most wire.MaxAuthLine bytes; a longer
// line is returned truncated to its last wire.MaxSyncLine bytes (never a
// valid auth line, and a sync line at its end still counts).
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
		if len(line) > 2*wire.MaxAuthLine {
			line = append(line[:0], line[len(line)-wire.MaxSyncLine:]...)
			long = true
		}
	}
}

// writeFunc adapts a write method to io.Writer.
type writeFunc func([]byte) (int, error)

func (f writeFunc) Write(p []byte) (int, error) { return f(p) }
