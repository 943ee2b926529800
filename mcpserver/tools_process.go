package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/sandbox"
)

// StartInput are start_process's arguments.
type StartInput struct {
	SandboxID      string            `json:"sandbox_id"`
	Command        any               `json:"command,omitempty" jsonschema:"an array of strings (argv, no shell) or a string (run with sh -c)"`
	Cmd            string            `json:"cmd,omitempty" jsonschema:"a shell command line, run with sh -c (instead of command)"`
	Cwd            string            `json:"cwd,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	TimeoutS       int               `json:"timeout_s,omitempty" jsonschema:"terminate its process group after this many seconds (SIGTERM, SIGKILL 2 s later; default: it lives as long as the sandbox)"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" jsonschema:"alias of timeout_s"`
	User           string            `json:"user,omitempty" jsonschema:"run as this user of the sandbox (default root)"`
}

// PIDOutput is {pid}.
type PIDOutput struct {
	PID int `json:"pid"`
}

// ProcessInput names a background process.
type ProcessInput struct {
	SandboxID string `json:"sandbox_id"`
	PID       int    `json:"pid"`
}

// KillInput are kill_process's arguments.
type KillInput struct {
	SandboxID string `json:"sandbox_id"`
	PID       int    `json:"pid"`
	Signal    string `json:"signal,omitempty" jsonschema:"the signal sent to the process group: a name (SIGTERM, TERM) or a number; default SIGKILL"`
}

// ProcessOutput is get_process_output's result.
type ProcessOutput struct {
	Stdout        string `json:"stdout" jsonschema:"the most recent output (the buffer keeps the last 1 MiB of each stream)"`
	Stderr        string `json:"stderr"`
	Running       bool   `json:"running"`
	ExitCode      *int   `json:"exit_code,omitempty"`
	TimedOut      bool   `json:"timed_out,omitempty"`
	Truncated     bool   `json:"truncated,omitempty" jsonschema:"older output was dropped"`
	StdoutDropped int64  `json:"stdout_dropped,omitempty"`
	StderrDropped int64  `json:"stderr_dropped,omitempty"`
	Error         string `json:"error,omitempty" jsonschema:"why it could not run, or was cut short"`
}

func (s *Server) startProcess(ctx context.Context, _ *mcp.CallToolRequest, in StartInput) (*mcp.CallToolResult, PIDOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, PIDOutput{}, err
	}
	args, err := argv(in.Command, in.Cmd)
	if err != nil {
		return nil, PIDOutput{}, err
	}
	env, err := envList(in.Env)
	if err != nil {
		return nil, PIDOutput{}, err
	}
	secs := in.TimeoutS
	if secs == 0 {
		secs = in.TimeoutSeconds
	}
	if secs < 0 {
		return nil, PIDOutput{}, errors.New("timeout_s must be positive")
	}
	pid, err := sb.Start(ctx, sandbox.StartOptions{Args: args, Env: env, Dir: in.Cwd, User: in.User, Timeout: time.Duration(secs) * time.Second})
	if err != nil {
		return nil, PIDOutput{}, runErr(args, in.Cwd, err)
	}
	return nil, PIDOutput{PID: pid}, nil
}

func (s *Server) getProcessOutput(_ context.Context, _ *mcp.CallToolRequest, in ProcessInput) (*mcp.CallToolResult, ProcessOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, ProcessOutput{}, err
	}
	pi, err := sb.Process(in.PID)
	if err != nil {
		return nil, ProcessOutput{}, fmt.Errorf("no process %d in sandbox %s", in.PID, in.SandboxID)
	}
	// The ring buffers hold the last bytes: keep the tail when cutting.
	out, errS, cut := capOutput(tail(pi.Stdout), tail(pi.Stderr))
	po := ProcessOutput{Stdout: out, Stderr: errS, Running: pi.Running,
		StdoutDropped: pi.StdoutDropped, StderrDropped: pi.StderrDropped,
		Truncated: cut || pi.StdoutDropped > 0 || pi.StderrDropped > 0}
	if !pi.Running {
		if pi.Err != nil {
			po.Error = pi.Err.Error()
		} else {
			code := pi.Status.ExitCode
			po.ExitCode, po.TimedOut = &code, pi.Status.TimedOut
		}
	}
	return nil, po, nil
}

// tail keeps the last MaxRawOutput/2 bytes of b (the part capOutput then
// measures).
func tail(b []byte) []byte {
	if n := MaxRawOutput / 2; len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (s *Server) killProcess(ctx context.Context, _ *mcp.CallToolRequest, in KillInput) (*mcp.CallToolResult, SuccessOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, SuccessOutput{}, err
	}
	sig, err := sandbox.ParseSignal(in.Signal)
	if err != nil {
		return nil, SuccessOutput{}, fmt.Errorf("signal %q: want a name like SIGTERM or a number (default SIGKILL)", in.Signal)
	}
	if sig == syscall.SIGKILL {
		// SIGKILL waits for the end, so that get_process_output then
		// reports it.
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = sb.Kill(kctx, in.PID)
	} else {
		err = sb.Signal(ctx, in.PID, sig)
	}
	switch {
	case errors.Is(err, sandbox.ErrNoProcess):
		return nil, SuccessOutput{}, fmt.Errorf("no process %d in sandbox %s", in.PID, in.SandboxID)
	case errors.Is(err, os.ErrProcessDone):
		return nil, SuccessOutput{}, fmt.Errorf("process %d has already ended (get_process_output has its exit code)", in.PID)
	case err != nil:
		return nil, SuccessOutput{}, err
	}
	return nil, SuccessOutput{Success: true}, nil
}
