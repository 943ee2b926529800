package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/pettyvm/petty/agent/agentpb"
	"github.com/pettyvm/petty/agent/wire"
)

// Cmd describes a command to run in the guest. Its fields mirror os/exec.Cmd.
type Cmd struct {
	// Args holds the command and its arguments; Args[0] is looked up in the
	// PATH of Env (or of the agent) unless it contains a slash.
	Args []string
	// Env holds "KEY=value" entries added to (and overriding) the
	// command's default environment: the agent's own, or in a guest whose
	// init is the agent PATH, HOME, USER, LOGNAME and LANG=C.UTF-8 for the
	// command's user.
	Env []string
	// Dir is the working directory; empty means the agent's, or in a guest
	// whose init is the agent the user's home directory (/ when it has
	// none).
	Dir string
	// User runs the command as this user of the guest's /etc/passwd, a
	// name or a numeric uid, with its primary and supplementary groups
	// (/etc/group); empty means the agent's own user (root in a guest).
	User string
	// Stdin, if not nil, is streamed to the command's standard input, which
	// is otherwise /dev/null. Exec does not wait for a Read that is still
	// blocked when the command exits.
	Stdin io.Reader
	// Stdout and Stderr receive the command's output while it runs; nil
	// discards it.
	Stdout, Stderr io.Writer
	// Timeout, if positive, makes the agent kill the process group after it;
	// the result is then an *ExitError with TimedOut set.
	Timeout time.Duration
	// MaxOutput, if positive, caps stdout and stderr together; the rest is
	// dropped and reported with ExitError.Truncated.
	MaxOutput int64
	// Root runs the command chrooted in this directory of the guest (a
	// container's root file system); Args[0] and Dir are paths inside it.
	Root string
	// NewNamespaces runs the command in new mount and PID namespaces.
	NewNamespaces bool
	// TTY gives the command a new terminal as its controlling terminal and
	// stdio; its output arrives on Stdout.
	TTY bool
	// Resize, if not nil, delivers window sizes for the command's terminal
	// (TTY) while it runs.
	Resize <-chan WindowSize
	// Started, if not nil, is called with the command's process id in the
	// guest once it started.
	Started func(pid int)
}

// WindowSize is a terminal's size in character cells.
type WindowSize struct {
	Rows, Cols uint32
}

// Exec runs cmd in the guest and waits for it. It returns nil if the command
// exited 0 with its output intact, an *ExitError if it exited non-zero, was
// killed or had output truncated, and other errors for failures to run it
// (errors.Is(err, fs.ErrNotExist) when the program is not found). When ctx
// ends, Exec tells the agent to kill the process group and returns
// ctx.Err() at once (within abortWait should the agent have stopped
// reading). An agent that sends more output than the host granted credits
// for overflows the call's buffer and fails it with ErrProtocol.
func (c *Client) Exec(ctx context.Context, cmd *Cmd) error {
	if len(cmd.Args) == 0 {
		return errors.New("agent: exec: empty Args")
	}
	stream, err := openStream[*agentpb.ExecInput, agentpb.ExecOutput](ctx, c.w, wire.MethodExec)
	if err != nil {
		return err
	}
	var sendMu sync.Mutex
	send := func(m *agentpb.ExecInput) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	var exit *agentpb.ExecExit
	done := make(chan struct{})
	defer func() {
		close(done)
		sendMu.Lock()
		stream.release(exit != nil)
		sendMu.Unlock()
	}()
	if err := send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Start{Start: &agentpb.ExecStart{
		Args:          cmd.Args,
		Env:           cmd.Env,
		Dir:           cmd.Dir,
		Stdin:         cmd.Stdin != nil,
		TimeoutNs:     int64(cmd.Timeout),
		MaxOutput:     cmd.MaxOutput,
		User:          cmd.User,
		Root:          cmd.Root,
		NewNamespaces: cmd.NewNamespaces,
		Tty:           cmd.TTY,
	}}}); err != nil {
		return err
	}

	stdinCredits := wire.NewWindow(wire.InputWindow)
	started := false
	stdout, stderr := cmd.Stdout, cmd.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var writeErr error
	// Output is acknowledged once consumed: the agent cannot have more
	// than OutputWindow messages that the host has not consumed, and one
	// that sends more overflows the stream's inbox (ErrProtocol).
	ack := wire.NewAcker(wire.OutputWindow / 4)
	consumed := func(w io.Writer, b []byte) {
		if writeErr == nil {
			if _, err := w.Write(b); err != nil {
				writeErr = err
				send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Kill{Kill: true}})
			}
		}
		if n := ack.Consumed(); n > 0 {
			send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Credit{Credit: uint32(n)}})
		}
	}

	for exit == nil {
		out, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("agent: exec: stream ended without an exit status: %w", io.ErrUnexpectedEOF)
			}
			return err
		}
		switch m := out.Msg.(type) {
		case *agentpb.ExecOutput_StartedPid:
			if !started && cmd.Stdin != nil {
				go forwardClientStdin(cmd.Stdin, stdinCredits, send, done)
			}
			if !started && cmd.Resize != nil {
				go forwardResize(cmd.Resize, send, done)
			}
			if !started && cmd.Started != nil {
				cmd.Started(int(m.StartedPid))
			}
			started = true
		case *agentpb.ExecOutput_Stdout:
			consumed(stdout, m.Stdout)
		case *agentpb.ExecOutput_Stderr:
			consumed(stderr, m.Stderr)
		case *agentpb.ExecOutput_Credit:
			stdinCredits.Grant(int(m.Credit))
		case *agentpb.ExecOutput_Exit:
			exit = m.Exit
		}
	}
	if writeErr != nil {
		return fmt.Errorf("agent: exec: writing output: %w", writeErr)
	}
	if exit.Code == 0 && exit.Signal == "" && !exit.Truncated && !exit.TimedOut {
		return nil
	}
	return &ExitError{Code: int(exit.Code), Signal: exit.Signal, Truncated: exit.Truncated, TimedOut: exit.TimedOut}
}

// forwardClientStdin streams r to the agent, one credit per chunk, then
// closes the command's stdin. It stops when done is closed; a Read still
// blocked in r then returns later to nothing (see Cmd.Stdin).
func forwardClientStdin(r io.Reader, credits *wire.Window, send func(*agentpb.ExecInput) error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	buf := make([]byte, wire.ChunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if credits.Take(ctx) != nil {
				return
			}
			if send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Stdin{Stdin: buf[:n]}}) != nil {
				return
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_StdinClose{StdinClose: true}})
			}
			return
		}
	}
}

// forwardResize sends the window sizes of ch to the agent until done is
// closed.
func forwardResize(ch <-chan WindowSize, send func(*agentpb.ExecInput) error, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case ws := <-ch:
			if send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Resize{Resize: &agentpb.Resize{Rows: ws.Rows, Cols: ws.Cols}}}) != nil {
				return
			}
		}
	}
}

// cappedBuffer collects at most max bytes and notes what it dropped.
type cappedBuffer struct {
	mu      sync.Mutex
	bufs    [2]bytes.Buffer
	left    int64
	dropped bool
}

// writer returns the writer for buffer i, sharing the cap.
func (b *cappedBuffer) writer(i int) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		b.mu.Lock()
		defer b.mu.Unlock()
		k := min(int64(len(p)), b.left)
		b.bufs[i].Write(p[:k])
		b.left -= k
		if k < int64(len(p)) {
			b.dropped = true
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Output runs args in the guest and returns its standard output. On a
// non-zero exit the *ExitError carries the standard error output. Output
// collects at most the Client's output limit (DefaultMaxOutput unless
// WithMaxOutput changed it), stdout and stderr together: it asks the agent
// to truncate there and drops anything beyond it itself; truncated output
// is reported as an *ExitError with Truncated set.
func (c *Client) Output(ctx context.Context, args ...string) ([]byte, error) {
	buf := &cappedBuffer{left: c.lim.maxOutput}
	err := c.Exec(ctx, &Cmd{Args: args, Stdout: buf.writer(0), Stderr: buf.writer(1), MaxOutput: c.lim.maxOutput})
	buf.mu.Lock()
	defer buf.mu.Unlock()
	if buf.dropped {
		var ee *ExitError
		switch {
		case err == nil:
			err = &ExitError{Truncated: true}
		case errors.As(err, &ee):
			ee.Truncated = true
		}
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = buf.bufs[1].Bytes()
	}
	return buf.bufs[0].Bytes(), err
}
