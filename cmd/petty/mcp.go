package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
)

func (a *app) mcpCommand() *cobra.Command {
	var f sandboxFlags
	cmd := &cobra.Command{
		Use:   "mcp [flags]",
		Short: "Serve sandboxes over MCP on stdin and stdout",
		Long: `petty mcp is an MCP server (Model Context Protocol) on stdin and stdout, for an
MCP client's configuration: its tools create sandboxes (microVMs), run commands
and code in them, and read and write their files. The sandboxes live as long as
the session: all are destroyed when stdin closes or a signal arrives.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return a.mcp(&f) },
	}
	f.register(cmd.Flags())
	return cmd
}

// mcp serves one MCP session on a.stdin and a.stdout.
func (a *app) mcp(f *sandboxFlags) (retErr error) {
	ctx, stop := serveSignals()
	defer stop()
	a.reclaim()
	mgr, err := a.manager(ctx, f)
	if err != nil {
		return err
	}
	defer func() {
		if err := a.closeManager(mgr); err != nil && retErr == nil {
			retErr = err
		}
	}()
	log := a.logger()
	log.Info("petty mcp: serving on stdio")
	in, ok := a.stdin.(io.ReadCloser) // os.Stdin: closing it ends a blocked read
	if !ok {
		in = io.NopCloser(a.stdin)
	}
	t := &mcp.IOTransport{Reader: in, Writer: nopWriteCloser{a.stdout}}
	err = a.mcpServer(mgr).Run(ctx, t)
	log.Info("petty mcp: session over; destroying the sandboxes", "err", err)
	if err != nil && ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, mcp.ErrConnectionClosed) {
		return fmt.Errorf("mcp session: %w", err)
	}
	return nil
}

// nopWriteCloser is a Writer whose Close does nothing (a.stdout is not
// ours to close).
type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
