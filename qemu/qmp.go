package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxQMPLine bounds one QMP message; QEMU runs untrusted guests, so its
// output is bounded like any other peer's.
const maxQMPLine = 1 << 20

// Greeting is the banner QEMU sends when a QMP client connects.
type Greeting struct {
	// Version is QEMU's version.
	Version QMPVersion `json:"version"`
	// Capabilities lists the optional protocol capabilities QEMU offers.
	Capabilities []string `json:"capabilities"`
}

// QMPVersion is the version in a QMP greeting.
type QMPVersion struct {
	QEMU struct {
		Major int `json:"major"`
		Minor int `json:"minor"`
		Micro int `json:"micro"`
	} `json:"qemu"`
	// Package is the distribution's package version, e.g. "Debian 1:7.2+dfsg-7".
	Package string `json:"package"`
}

// String returns "major.minor.micro".
func (v QMPVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.QEMU.Major, v.QEMU.Minor, v.QEMU.Micro)
}

// QMP is a client of QEMU's machine protocol on one connection, in command
// mode (after qmp_capabilities). Asynchronous events are skipped. Its
// methods are safe for concurrent use; commands run one at a time.
type QMP struct {
	conn     net.Conn
	greeting Greeting
	closed   atomic.Bool

	mu     sync.Mutex // serialises commands; guards r, nextID and broken
	r      *bufio.Reader
	nextID uint64
	broken error // set once an I/O error left the stream in an unknown state
}

// DialQMP connects to the QMP unix socket at path, reads the greeting and
// enters command mode. ctx bounds the connection and the handshake only.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	return NewQMP(ctx, conn)
}

// NewQMP runs the QMP handshake on conn (greeting, qmp_capabilities) and
// returns a client that owns conn. On failure it closes conn.
func NewQMP(ctx context.Context, conn net.Conn) (_ *QMP, retErr error) {
	q := &QMP{conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	defer func() {
		if retErr != nil {
			_ = conn.Close()
		}
	}()
	stop := q.bound(ctx)
	line, err := q.readLine()
	stop()
	if err != nil {
		return nil, q.ioError(ctx, "read greeting", err)
	}
	var g struct {
		QMP *Greeting `json:"QMP"`
	}
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return nil, fmt.Errorf("qemu: qmp: bad greeting %.200q", line)
	}
	q.greeting = *g.QMP
	if err := q.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		return nil, err
	}
	return q, nil
}

// Greeting returns the banner QEMU sent on connect.
func (q *QMP) Greeting() Greeting { return q.greeting }

// Execute runs command with args (nil for none; anything json.Marshal
// accepts) and decodes its return value into result (nil to discard it).
// A command QEMU rejects returns a *QMPError. When ctx ends while the
// command is in flight, the connection is closed (QEMU's answer can no
// longer be matched reliably) and later calls fail with ErrClosed.
func (q *QMP) Execute(ctx context.Context, command string, args, result any) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() {
		return fmt.Errorf("qmp %s: %w", command, ErrClosed)
	}
	if q.broken != nil {
		return fmt.Errorf("qmp %s: %w", command, q.broken)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	q.nextID++
	id := "petty-" + strconv.FormatUint(q.nextID, 10)
	req, err := json.Marshal(struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{command, args, id})
	if err != nil {
		return fmt.Errorf("qmp %s: %w", command, err)
	}
	stop := q.bound(ctx)
	defer stop()
	if _, err := q.conn.Write(append(req, '\n')); err != nil {
		return q.ioError(ctx, "qmp "+command, err)
	}
	for {
		line, err := q.readLine()
		if err != nil {
			return q.ioError(ctx, "qmp "+command, err)
		}
		var resp struct {
			ID     json.RawMessage `json:"id"`
			Return json.RawMessage `json:"return"`
			Error  *QMPError       `json:"error"`
			Event  string          `json:"event"`
		}
		if err := json.Unmarshal(line, &resp); err != nil {
			return q.ioError(ctx, "qmp "+command, fmt.Errorf("bad message %.200q: %w", line, err))
		}
		if resp.Event != "" || string(resp.ID) != strconv.Quote(id) {
			continue // an event, or the answer to a command no longer awaited
		}
		if resp.Error != nil {
			return fmt.Errorf("qmp %s: %w", command, resp.Error)
		}
		if result != nil && len(resp.Return) > 0 {
			if err := json.Unmarshal(resp.Return, result); err != nil {
				return fmt.Errorf("qmp %s: decode return value: %w", command, err)
			}
		}
		return nil
	}
}

// Status is the answer of query-status.
type Status struct {
	// Running reports whether the vCPUs run.
	Running bool `json:"running"`
	// Status is QEMU's run state, e.g. "running", "paused", "shutdown".
	Status string `json:"status"`
}

// QueryStatus returns the VM's run state.
func (q *QMP) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := q.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// Stop pauses the vCPUs.
func (q *QMP) Stop(ctx context.Context) error { return q.Execute(ctx, "stop", nil, nil) }

// Cont resumes the vCPUs.
func (q *QMP) Cont(ctx context.Context) error { return q.Execute(ctx, "cont", nil, nil) }

// SystemPowerdown presses the guest's ACPI power button.
func (q *QMP) SystemPowerdown(ctx context.Context) error {
	return q.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once.
func (q *QMP) Quit(ctx context.Context) error { return q.Execute(ctx, "quit", nil, nil) }

// Close closes the connection, interrupting a command in flight. It is safe
// to call more than once; later calls return nil.
func (q *QMP) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	return q.conn.Close()
}

// bound applies ctx's deadline and cancellation to the connection until the
// returned function is called.
func (q *QMP) bound(ctx context.Context) (stop func()) {
	if d, ok := ctx.Deadline(); ok {
		_ = q.conn.SetDeadline(d)
	}
	cancel := context.AfterFunc(ctx, func() { _ = q.conn.SetDeadline(time.Now()) })
	return func() {
		cancel()
		_ = q.conn.SetDeadline(time.Time{})
	}
}

// ioError records that the stream broke, closes the connection and returns
// the error to report: ErrClosed after Close, ctx's error when it ended.
func (q *QMP) ioError(ctx context.Context, op string, err error) error {
	if q.closed.Load() {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The only deadlines are ctx's; the conn's may fire a moment
		// before ctx reports it.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if cerr := ctx.Err(); cerr != nil {
		err = cerr
	}
	q.broken = fmt.Errorf("%w: %s: %w", ErrClosed, op, err)
	_ = q.conn.Close()
	return fmt.Errorf("%s: %w", op, err)
}

// readLine returns the next non-empty line without its line ending.
func (q *QMP) readLine() ([]byte, error) {
	for {
		var line []byte
		for {
			chunk, err := q.r.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > maxQMPLine {
				return nil, errors.New("message too long")
			}
			if err == nil {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return line, nil
		}
	}
}
