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
)

// abandonWait bounds how long a cancelled call keeps draining its stream
// before giving it up.
const abandonWait = 5 * time.Second

// Cmd describes a command to run in the guest. Its fields mirror os/exec.Cmd.
type Cmd struct {
	// Args holds the command and its arguments; Args[0] is looked up in the
	// PATH of Env (or of the agent) unless it contains a slash.
	Args []string
	// Env is the environment, "KEY=value" each. Empty means the agent's.
	Env []string
	// Dir is the working directory; empty means the agent's.
	Dir string
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
}

// Exec runs cmd in the guest and waits for it. It returns nil if the command
// exited 0 with its output intact, an *ExitError if it exited non-zero, was
// killed or had output truncated, and other errors for failures to run it
// (errors.Is(err, fs.ErrNotExist) when the program is not found). When ctx
// ends the agent kills the process group and Exec returns ctx.Err().
func (c *Client) Exec(ctx context.Context, cmd *Cmd) (retErr error) {
	if len(cmd.Args) == 0 {
		return errors.New("agent: exec: empty Args")
	}
	// The stream outlives ctx briefly so that a cancelled command can be
	// killed and its stream drained.
	sctx, scancel := context.WithCancel(context.WithoutCancel(ctx))
	defer scancel()
	stream, err := openStream[*agentpb.ExecInput, agentpb.ExecOutput](sctx, c.w, "Exec")
	if err != nil {
		return fromRemote(err)
	}
	var sendMu sync.Mutex
	send := func(m *agentpb.ExecInput) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(m)
	}
	if err := send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Start{Start: &agentpb.ExecStart{
		Args:      cmd.Args,
		Env:       cmd.Env,
		Dir:       cmd.Dir,
		Stdin:     cmd.Stdin != nil,
		TimeoutNs: int64(cmd.Timeout),
		MaxOutput: cmd.MaxOutput,
	}}}); err != nil {
		return fromRemote(err)
	}

	done := make(chan struct{})
	defer close(done)
	stdinCredits := newWindow(inputWindow)
	started := false

	kill := func() {
		send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Kill{Kill: true}})
		time.AfterFunc(abandonWait, scancel)
	}
	stopWatch := context.AfterFunc(ctx, kill)
	defer stopWatch()

	stdout, stderr := cmd.Stdout, cmd.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	var writeErr error
	ack := acker{batch: outputWindow / 4}
	consumed := func(w io.Writer, b []byte) {
		if writeErr == nil {
			if _, err := w.Write(b); err != nil {
				writeErr = err
				kill()
			}
		}
		if n := ack.consumed(); n > 0 {
			send(&agentpb.ExecInput{Msg: &agentpb.ExecInput_Credit{Credit: uint32(n)}})
		}
	}

	var exit *agentpb.ExecExit
	for exit == nil {
		out, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("agent: exec: stream ended without an exit status: %w", io.ErrUnexpectedEOF)
			}
			return fromRemote(err)
		}
		switch m := out.Msg.(type) {
		case *agentpb.ExecOutput_StartedPid:
			if !started && cmd.Stdin != nil {
				go forwardClientStdin(cmd.Stdin, stdinCredits, send, done)
			}
			started = true
		case *agentpb.ExecOutput_Stdout:
			consumed(stdout, m.Stdout)
		case *agentpb.ExecOutput_Stderr:
			consumed(stderr, m.Stderr)
		case *agentpb.ExecOutput_Credit:
			stdinCredits.grant(int(m.Credit))
		case *agentpb.ExecOutput_Exit:
			exit = m.Exit
		}
	}
	// Tell the agent we are done and wait for it to end the stream.
	sendMu.Lock()
	stream.CloseSend()
	sendMu.Unlock()
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}

	if ctx.Err() != nil {
		return ctx.Err()
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
// closes the command's stdin.
func forwardClientStdin(r io.Reader, credits *window, send func(*agentpb.ExecInput) error, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if credits.take(ctx) != nil {
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

// Output runs args in the guest and returns its standard output. On a
// non-zero exit the *ExitError carries the standard error output.
func (c *Client) Output(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	err := c.Exec(ctx, &Cmd{Args: args, Stdout: &stdout, Stderr: &stderr})
	var ee *ExitError
	if errors.As(err, &ee) {
		ee.Stderr = stderr.Bytes()
	}
	return stdout.Bytes(), err
}
