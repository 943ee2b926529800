package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/pettyvm/petty/sandbox"
)

// DefaultExecTimeout bounds a command when the call gives no timeout.
const DefaultExecTimeout = 5 * time.Minute

// CommandInput are run_command's (and exec's) arguments.
type CommandInput struct {
	SandboxID string `json:"sandbox_id"`
	// Command is an argv array (run as is) or a string (run by sh -c).
	Command any               `json:"command,omitempty" jsonschema:"the command: an array of strings (argv, no shell) or a string (run with sh -c)"`
	Cmd     string            `json:"cmd,omitempty" jsonschema:"a shell command line, run with sh -c (instead of command)"`
	Cwd     string            `json:"cwd,omitempty" jsonschema:"working directory"`
	Env     map[string]string `json:"env,omitempty" jsonschema:"extra environment variables"`
	Stdin   string            `json:"stdin,omitempty" jsonschema:"text fed to the command's standard input"`
	// TimeoutS and TimeoutSeconds are aliases.
	TimeoutS       int    `json:"timeout_s,omitempty" jsonschema:"after this many seconds (default 300) the command's process group gets SIGTERM, and SIGKILL 2 s later"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"alias of timeout_s"`
	Background     bool   `json:"background,omitempty" jsonschema:"start it in the background and return its pid (see get_process_output, kill_process)"`
	User           string `json:"user,omitempty" jsonschema:"run as this user of the sandbox (default root)"`
}

// CodeInput are execute_code's (and run_code's) arguments.
type CodeInput struct {
	SandboxID      string            `json:"sandbox_id"`
	Language       string            `json:"language" jsonschema:"python, python3, javascript, node, bash or sh"`
	Code           string            `json:"code" jsonschema:"the program; it is written to a file in the guest, not passed on the command line"`
	Env            map[string]string `json:"env,omitempty"`
	Cwd            string            `json:"cwd,omitempty"`
	Stdin          string            `json:"stdin,omitempty"`
	TimeoutS       int               `json:"timeout_s,omitempty" jsonschema:"after this many seconds (default 300) the program's process group gets SIGTERM, and SIGKILL 2 s later"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" jsonschema:"alias of timeout_s"`
	User           string            `json:"user,omitempty" jsonschema:"run as this user of the sandbox (default root)"`
}

// ExecOutput is the result of a command: exit_code, stdout, stderr,
// truncated and timed_out, or pid alone when it was started in the
// background.
type ExecOutput struct {
	ExitCode   *int    `json:"exit_code,omitempty" jsonschema:"exit status; -1 when killed by a signal"`
	Stdout     *string `json:"stdout,omitempty"`
	Stderr     *string `json:"stderr,omitempty"`
	Truncated  *bool   `json:"truncated,omitempty" jsonschema:"output over the cap was dropped"`
	TimedOut   *bool   `json:"timed_out,omitempty" jsonschema:"the timeout killed the process group"`
	Signal     string  `json:"signal,omitempty"`
	DurationMS *int64  `json:"duration_ms,omitempty"`
	PID        *int    `json:"pid,omitempty" jsonschema:"the background process (background: true)"`
}

// argv turns command (array or string) or cmd into argv.
func argv(command any, cmd string) ([]string, error) {
	switch c := command.(type) {
	case nil:
		if cmd == "" {
			return nil, errors.New("command is required: an array of strings, or a string run with sh -c")
		}
		return []string{"sh", "-c", cmd}, nil
	case string:
		if cmd != "" {
			return nil, errors.New("give command or cmd, not both")
		}
		if strings.TrimSpace(c) == "" {
			return nil, errors.New("command is empty")
		}
		return []string{"sh", "-c", c}, nil
	case []any:
		if cmd != "" {
			return nil, errors.New("give command or cmd, not both")
		}
		if len(c) == 0 {
			return nil, errors.New("command is an empty array")
		}
		out := make([]string, len(c))
		for i, a := range c {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("command[%d] is not a string", i)
			}
			out[i] = s
		}
		if out[0] == "" {
			return nil, errors.New("command[0] is empty")
		}
		return out, nil
	default:
		return nil, fmt.Errorf("command must be an array of strings or a string, not %T", command)
	}
}

func envList(m map[string]string) ([]string, error) {
	out := make([]string, 0, len(m))
	for k, v := range m {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("env: bad variable name %q", k)
		}
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

func timeout(a, b int) (time.Duration, error) {
	s := a
	if s == 0 {
		s = b
	}
	if s < 0 {
		return 0, errors.New("timeout_s must be positive")
	}
	if s == 0 {
		return DefaultExecTimeout, nil
	}
	return time.Duration(s) * time.Second, nil
}

func execOutput(res *sandbox.Result) ExecOutput {
	out, errS, cut := capOutput(res.Stdout, res.Stderr)
	trunc := res.Truncated || cut
	code, timedOut, ms := res.ExitCode, res.TimedOut, res.Duration.Milliseconds()
	return ExecOutput{ExitCode: &code, Stdout: &out, Stderr: &errS, Truncated: &trunc, TimedOut: &timedOut,
		Signal: res.Signal, DurationMS: &ms}
}

// runErr explains a failed run to the model.
func runErr(args []string, cwd string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if cwd != "" {
			return fmt.Errorf("command %q or working directory %q not found in the sandbox: %w", args[0], cwd, err)
		}
		return fmt.Errorf("command %q not found in the sandbox: %w", args[0], err)
	}
	return err
}

func (s *Server) runCommand(ctx context.Context, req *mcp.CallToolRequest, in CommandInput) (*mcp.CallToolResult, ExecOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	args, err := argv(in.Command, in.Cmd)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	env, err := envList(in.Env)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	to, err := timeout(in.TimeoutS, in.TimeoutSeconds)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	if in.Background {
		if in.Stdin != "" {
			return nil, ExecOutput{}, errors.New("stdin is not supported with background: true")
		}
		secs := in.TimeoutS // a background process has no default timeout
		if secs == 0 {
			secs = in.TimeoutSeconds
		}
		pid, err := sb.Start(ctx, sandbox.StartOptions{Args: args, Env: env, Dir: in.Cwd, User: in.User, Timeout: time.Duration(secs) * time.Second})
		if err != nil {
			return nil, ExecOutput{}, runErr(args, in.Cwd, err)
		}
		return nil, ExecOutput{PID: &pid}, nil
	}
	var stdin io.Reader
	if in.Stdin != "" {
		stdin = strings.NewReader(in.Stdin)
	}
	stop := newProgress(req).ticking(ctx, s.tick, "running")
	res, err := sb.Run(ctx, sandbox.RunOptions{Args: args, Env: env, Dir: in.Cwd, User: in.User, Stdin: stdin, Timeout: to, MaxOutput: MaxRawOutput})
	stop()
	if err != nil {
		return nil, ExecOutput{}, runErr(args, in.Cwd, err)
	}
	return nil, execOutput(res), nil
}

func (s *Server) executeCode(ctx context.Context, req *mcp.CallToolRequest, in CodeInput) (*mcp.CallToolResult, ExecOutput, error) {
	sb, err := s.sandbox(in.SandboxID)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	env, err := envList(in.Env)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	to, err := timeout(in.TimeoutS, in.TimeoutSeconds)
	if err != nil {
		return nil, ExecOutput{}, err
	}
	var stdin io.Reader
	if in.Stdin != "" {
		stdin = strings.NewReader(in.Stdin)
	}
	stop := newProgress(req).ticking(ctx, s.tick, "running")
	res, err := sb.RunCode(ctx, in.Language, in.Code, sandbox.RunOptions{Env: env, Dir: in.Cwd, User: in.User, Stdin: stdin, Timeout: to, MaxOutput: MaxRawOutput})
	stop()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ExecOutput{}, fmt.Errorf("no interpreter for %s in this sandbox's image: %w", in.Language, err)
	}
	if err != nil {
		return nil, ExecOutput{}, err
	}
	return nil, execOutput(res), nil
}
