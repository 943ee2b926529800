package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pettyvm/petty/agent"
)

// DefaultMaxOutput is Run's output cap when RunOptions.MaxOutput is zero.
const DefaultMaxOutput = 1 << 20

// ExecOptions describe a command to run in the guest.
type ExecOptions struct {
	// Args is the command and its arguments (never a shell string).
	Args []string
	// Env ("KEY=value") is added to the sandbox's environment.
	Env []string
	// Dir is the working directory; "" is the user's home in a guest.
	Dir string
	// User runs the command as this user of the guest (a name or a numeric
	// uid); "" is the agent's own, root.
	User string
	// Stdin, if set, is streamed to the command's standard input.
	Stdin io.Reader
	// Stdout and Stderr receive the output as it comes; nil discards it.
	Stdout, Stderr io.Writer
	// Timeout, if positive, terminates the command's process group after
	// it: SIGTERM, then SIGKILL after KillGrace to what is left of it.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL when Timeout
	// expires; 0 is the agent's default (2 s).
	KillGrace time.Duration
	// MaxOutput, if positive, caps stdout and stderr together.
	MaxOutput int64
}

// ExitStatus is how a command ended.
type ExitStatus struct {
	// ExitCode is the exit status, -1 when killed by a signal.
	ExitCode int
	// Signal names the signal that killed it, if any.
	Signal string
	// TimedOut reports that the timeout terminated its process group.
	TimedOut bool
	// Truncated reports that output beyond the cap was dropped.
	Truncated bool
	// Duration is how long the call took.
	Duration time.Duration
}

// environ returns the environment a command adds to the agent's default
// (which has PATH, HOME, USER and LANG for the command's user): the
// sandbox's, then extra.
func (s *Sandbox) environ(extra []string) []string {
	if len(s.env) == 0 && len(extra) == 0 {
		return nil
	}
	return slices.Concat(s.env, extra)
}

// agentCmd checks o and turns it into the agent's command.
func (s *Sandbox) agentCmd(o ExecOptions) (*agent.Cmd, error) {
	if err := s.alive(); err != nil {
		return nil, err
	}
	if len(o.Args) == 0 || o.Args[0] == "" {
		return nil, &InvalidError{Field: "command", Problem: "empty"}
	}
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, &InvalidError{Field: "env", Problem: fmt.Sprintf("%q is not KEY=value", kv)}
		}
	}
	if o.Timeout < 0 || o.KillGrace < 0 {
		return nil, &InvalidError{Field: "timeout", Problem: "negative"}
	}
	return &agent.Cmd{
		Args: o.Args, Env: s.environ(o.Env), Dir: o.Dir, User: o.User, Stdin: o.Stdin,
		Stdout: o.Stdout, Stderr: o.Stderr, Timeout: o.Timeout, KillGrace: o.KillGrace, MaxOutput: o.MaxOutput,
	}, nil
}

// exitStatus turns the agent's result of a command started at began into
// an ExitStatus; a non-zero exit is not an error.
func (s *Sandbox) exitStatus(ctx context.Context, began time.Time, arg0 string, err error) (ExitStatus, error) {
	st := ExitStatus{Duration: time.Since(began)}
	if f := s.mgr.cfg.OnExec; f != nil {
		f(st.Duration)
	}
	var ee *agent.ExitError
	switch {
	case err == nil:
		return st, nil
	case errors.As(err, &ee):
		st.ExitCode, st.Signal, st.TimedOut, st.Truncated = ee.Code, ee.Signal, ee.TimedOut, ee.Truncated
		return st, nil
	case ctx.Err() != nil:
		return st, ctx.Err()
	case s.alive() != nil:
		return st, s.alive()
	default:
		return st, fmt.Errorf("sandbox %s: exec %q: %w", s.id, arg0, err)
	}
}

// Exec runs a command, streaming its output, and returns how it ended. A
// non-zero exit is not an error. When ctx ends the command's process group
// is killed and ctx's error returned.
func (s *Sandbox) Exec(ctx context.Context, o ExecOptions) (ExitStatus, error) {
	cmd, err := s.agentCmd(o)
	if err != nil {
		return ExitStatus{}, err
	}
	began := time.Now()
	return s.exitStatus(ctx, began, o.Args[0], s.client.Exec(ctx, cmd))
}

// RunOptions describe a command whose output Run collects.
type RunOptions struct {
	Args      []string
	Env       []string
	Dir       string
	User      string
	Stdin     io.Reader
	Timeout   time.Duration
	KillGrace time.Duration
	// MaxOutput caps stdout and stderr together. Default: DefaultMaxOutput.
	MaxOutput int64
}

// Result is a finished command with its collected output.
type Result struct {
	ExitStatus
	Stdout, Stderr []byte
}

// Run runs a command and collects its output, at most MaxOutput bytes of
// stdout and stderr together (the rest is dropped, Truncated set).
func (s *Sandbox) Run(ctx context.Context, o RunOptions) (*Result, error) {
	max := o.MaxOutput
	if max <= 0 {
		max = DefaultMaxOutput
	}
	budget := &capBudget{left: max}
	stdout, stderr := &capWriter{b: budget}, &capWriter{b: budget}
	st, err := s.Exec(ctx, ExecOptions{Args: o.Args, Env: o.Env, Dir: o.Dir, User: o.User, Stdin: o.Stdin,
		Stdout: stdout, Stderr: stderr, Timeout: o.Timeout, KillGrace: o.KillGrace, MaxOutput: max})
	if err != nil {
		return nil, err
	}
	st.Truncated = st.Truncated || budget.cut
	return &Result{ExitStatus: st, Stdout: stdout.buf.Bytes(), Stderr: stderr.buf.Bytes()}, nil
}

// capBudget is the bytes two capWriters may still keep together.
type capBudget struct {
	mu   sync.Mutex
	left int64
	cut  bool
}

// capWriter keeps what its shared budget allows and drops the rest.
type capWriter struct {
	b   *capBudget
	buf bytes.Buffer
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	n := int64(len(p))
	if n > w.b.left {
		w.b.cut = true
		n = w.b.left
	}
	w.buf.Write(p[:n])
	w.b.left -= n
	return len(p), nil
}
