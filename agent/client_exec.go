package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
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
	// Timeout, if positive, makes the agent terminate the process group
	// after it (SIGTERM, then SIGKILL after KillGrace) and report the exit
	// once the group is gone; the result is then an *ExitError with
	// TimedOut set.
	Timeout time.Duration
	// MaxOutput, if positive, caps stdout and stderr together; the rest is
	// dropped and reported with ExitError.Truncated.
	MaxOutput int64
	// KillGrace is how long a command whose Timeout expired has between
	// SIGTERM and SIGKILL to its process group (members that outlived the
	// leader included); 0 means the agent's default, 2 s.
	KillGrace time.Duration
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
	p, err := c.Start(ctx, cmd)
	if err != nil {
		return err
	}
	return p.Wait()
}

// Process is a command started by Start. Wait must be called to collect its
// output and exit status; Signal may be called concurrently with Wait.
type Process struct {
	ctx    context.Context
	stream *clientStream[*agentpb.ExecInput, agentpb.ExecOutput, *agentpb.ExecOutput]
	cmd    *Cmd
	sendMu sync.Mutex
	done   chan struct{} // closed when Wait returns: stops stdin forwarding

	pid            int64
	started        bool
	exit           *agentpb.ExecExit
	stdinCredits   *wire.Window
	ack            *wire.Acker
	stdout, stderr io.Writer
	writeErr       error
	waited         bool
}

// Start starts cmd in the guest and returns once the agent reports it
// running (or failing to start, as Exec would). ctx bounds the command, as
// in Exec: when it ends the agent kills the process group and Wait returns
// ctx.Err().
func (c *Client) Start(ctx context.Context, cmd *Cmd) (*Process, error) {
	if len(cmd.Args) == 0 {
		return nil, errors.New("agent: exec: empty Args")
	}
	stream, err := openStream[*agentpb.ExecInput, agentpb.ExecOutput](ctx, c.w, wire.MethodExec)
	if err != nil {
		return nil, err
	}
	p := &Process{ctx: ctx, stream: stream, cmd: cmd, done: make(chan struct{}),
		stdinCredits: wire.NewWindow(wire.InputWindow),
		// Output is acknowledged once consumed: the agent cannot have
		// more than OutputWindow messages that the host has not consumed,
		// and one that sends more overflows the stream's inbox
		// (ErrProtocol).
		ack: wire.NewAcker(wire.OutputWindow / 4), stdout: cmd.Stdout, stderr: cmd.Stderr}
	if p.stdout == nil {
		p.stdout = io.Discard
	}
	if p.stderr == nil {
		p.stderr = io.Discard
	}
	if err := p.send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Start{Start: &agentpb.ExecStart{
		Args:          cmd.Args,
		Env:           cmd.Env,
		Dir:           cmd.Dir,
		Stdin:         cmd.Stdin != nil,
		TimeoutNs:     int64(cmd.Timeout),
		MaxOutput:     cmd.MaxOutput,
		User:          cmd.User,
		KillGraceNs:   int64(cmd.KillGrace),
		Root:          cmd.Root,
		NewNamespaces: cmd.NewNamespaces,
		Tty:           cmd.TTY,
	}}}); err != nil {
		p.finish()
		return nil, err
	}
	for !p.started && p.exit == nil {
		if err := p.recv(); err != nil {
			p.finish()
			return nil, err
		}
	}
	return p, nil
}

// PID returns the command's process id in the guest (0 if the agent
// reported its exit before its start).
func (p *Process) PID() int64 { return p.pid }

// Signal sends sig to the command's process group in the guest while its
// leader runs; the agent ignores it afterwards.
func (p *Process) Signal(sig syscall.Signal) error {
	if sig <= 0 {
		return fmt.Errorf("agent: exec: invalid signal %d", int(sig))
	}
	return p.send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Signal{Signal: int32(sig)}})
}

// Kill sends SIGKILL to the command's process group while its leader runs.
func (p *Process) Kill() error {
	return p.send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Kill{Kill: true}})
}

// Wait streams the command's output to its writers until it exits and
// returns what Exec would. It may be called once.
func (p *Process) Wait() error {
	if p.waited {
		return errors.New("agent: exec: Wait called twice")
	}
	p.waited = true
	defer p.finish()
	for p.exit == nil {
		if err := p.recv(); err != nil {
			return err
		}
	}
	if p.writeErr != nil {
		return fmt.Errorf("agent: exec: writing output: %w", p.writeErr)
	}
	exit := p.exit
	if exit.Code == 0 && exit.Signal == "" && !exit.Truncated && !exit.TimedOut {
		return nil
	}
	return &ExitError{Code: int(exit.Code), Signal: exit.Signal, Truncated: exit.Truncated, TimedOut: exit.TimedOut}
}

// send sends one message on the stream; it is safe for concurrent use.
func (p *Process) send(m *agentpb.ExecInput) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	return p.stream.Send(m)
}

// finish ends the call on the host (see clientStream.release).
func (p *Process) finish() {
	close(p.done)
	p.sendMu.Lock()
	p.stream.release(p.exit != nil)
	p.sendMu.Unlock()
}

// recv handles the next message from the agent.
func (p *Process) recv() error {
	out, err := p.stream.Recv()
	if err != nil {
		if p.ctx.Err() != nil {
			return p.ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("agent: exec: stream ended without an exit status: %w", io.ErrUnexpectedEOF)
		}
		return err
	}
	switch m := out.Msg.(type) {
	case *agentpb.ExecOutput_StartedPid:
		if !p.started {
			p.pid = m.StartedPid
			if p.cmd.Stdin != nil {
				go forwardClientStdin(p.cmd.Stdin, p.stdinCredits, p.send, p.done)
			}
			if p.cmd.Resize != nil {
				go forwardResize(p.cmd.Resize, p.send, p.done)
			}
			if p.cmd.Started != nil {
				p.cmd.Started(int(m.StartedPid))
			}
		}
		p.started = true
	case *agentpb.ExecOutput_Stdout:
		p.consumed(p.stdout, m.Stdout)
	case *agentpb.ExecOutput_Stderr:
		p.consumed(p.stderr, m.Stderr)
	case *agentpb.ExecOutput_Credit:
		p.stdinCredits.Grant(int(m.Credit))
	case *agentpb.ExecOutput_Exit:
		p.exit = m.Exit
	}
	return nil
}

// consumed writes output to w and acknowledges it; a failed write kills
// the command.
func (p *Process) consumed(w io.Writer, b []byte) {
	if p.writeErr == nil {
		if _, err := w.Write(b); err != nil {
			p.writeErr = err
			p.send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Kill{Kill: true}})
		}
	}
	if n := p.ack.Consumed(); n > 0 {
		p.send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Credit{Credit: uint32(n)}})
	}
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

// forwardResize sends the window sizes from ch to the agent until done.
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
