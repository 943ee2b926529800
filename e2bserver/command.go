package e2bserver

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"

	"github.com/pettyvm/petty/sandbox"
)

// guestCommand runs a file utility in the guest as u, its arguments never
// through a shell, and turns a failure into an *fs.PathError carrying its
// message.
func guestCommand(ctx context.Context, sb *sandbox.Sandbox, u user, op, p string, args ...string) error {
	res, err := sb.Run(ctx, sandbox.RunOptions{Args: args, User: u.name, MaxOutput: 4096})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return &fs.PathError{Op: op, Path: p, Err: fmt.Errorf("%s: %s", args[0], bytes.TrimSpace(res.Stderr))}
	}
	return nil
}
