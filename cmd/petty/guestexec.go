package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/pettyvm/petty/agent"
)

// Exit codes of a guest command that could not run, as a shell reports them.
const (
	exitNotFound      = 127
	exitNotExecutable = 126
	exitSignalBase    = 128
)

// runInGuest runs gc through c with petty's standard streams and returns
// nil when it exited 0, an exitCode with its status otherwise (128+N when
// killed by signal N, exitTimedOut when its Timeout killed it), or the
// error that kept it from running.
func (a *app) runInGuest(ctx context.Context, c *agent.Client, gc *agent.Cmd) error {
	run := *gc
	run.Stdin, run.Stdout, run.Stderr = a.stdin, a.stdout, a.stderr
	return guestStatus(gc.Args[0], c.Exec(ctx, &run))
}

// guestStatus maps the result of agent.Client.Exec to petty's exit.
func guestStatus(name string, err error) error {
	var ee *agent.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.TimedOut:
		return exitCode(exitTimedOut)
	case errors.As(err, &ee):
		if ee.Signal != "" {
			if n := unix.SignalNum(ee.Signal); n != 0 {
				return exitCode(exitSignalBase + int(n))
			}
			return exitCode(exitSignalBase + int(unix.SIGKILL))
		}
		return exitCode(ee.Code)
	case errors.Is(err, fs.ErrNotExist):
		return &guestStartError{code: exitNotFound, err: fmt.Errorf("%s: command not found in the guest", name)}
	case errors.Is(err, fs.ErrPermission):
		return &guestStartError{code: exitNotExecutable, err: fmt.Errorf("%s: permission denied in the guest", name)}
	}
	return fmt.Errorf("running %s in the guest: %w", name, err)
}

// guestStartError is a command the agent could not start: petty prints it and
// exits with code, as a shell would.
type guestStartError struct {
	code int
	err  error
}

func (e *guestStartError) Error() string { return e.err.Error() }
func (e *guestStartError) Unwrap() error { return e.err }
