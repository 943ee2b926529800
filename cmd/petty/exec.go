package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/vm"
)

func (a *app) execCommand() *cobra.Command {
	var (
		timeout time.Duration
		xf      execFlags
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] NAME [--] CMD [ARGS...]",
		Short: "Run a command in a detached VM",
		Long: `Run CMD in the detached VM NAME (see petty run --detach) with stdin, stdout
and stderr streamed, and exit with its exit code (128+N when signal N killed it).`,
		Example: "  petty exec dev -- ls -l /",
		Args:    minArgs(2, "NAME and the command to run (petty exec NAME -- CMD [ARGS...])"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, argv := args[0], args[1:]
			if argv[0] == "--" { // NAME -- CMD: the flags ended at NAME
				argv = argv[1:]
			}
			if len(argv) == 0 {
				return usagef("missing the command to run (petty exec NAME -- CMD [ARGS...])")
			}
			if err := xf.check(); err != nil {
				return err
			}
			return a.exec(cmd.Context(), name, xf.cmd(argv), timeout)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().DurationVar(&timeout, "connect-timeout", 10*time.Second, "how long to try to reach the VM's agent")
	xf.register(cmd.Flags())
	return cmd
}

func (a *app) exec(ctx context.Context, name string, gc *agent.Cmd, timeout time.Duration) (retErr error) {
	a.reclaim()
	r, err := a.load(name)
	if err != nil {
		return err
	}
	att, err := a.attach(r)
	if err != nil {
		return err
	}
	if att == nil || att.State() != vm.Running {
		if att != nil {
			att.Close()
		}
		return fmt.Errorf("VM %s is %s", name, a.liveState(r).state)
	}
	defer att.Close()
	ctx, caught, stop := interruptible(ctx)
	defer stop()
	defer whenInterrupted(caught, &retErr)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	c, err := att.Agent(cctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting to the agent of VM %s: %w", name, err)
	}
	defer c.Close()
	return a.runInGuest(ctx, c, gc)
}
