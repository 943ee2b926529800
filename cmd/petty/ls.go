package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) lsCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list", "ps"},
		Short:   "List detached VMs",
		Long: `List the detached VMs: name, ID, VMM, VMM pid and state. A VM whose VMM has
died is listed once as "exited", and forgotten.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rs, err := a.list()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tVMM\tPID\tSTATE\tCREATED")
			for _, r := range rs {
				st := a.liveState(r)
				if st == stateExited {
					if err := a.stopVM(r, time.Second, false); err != nil {
						a.logger().Warn("cleaning up", "vm", r.Name, "err", err)
					}
				}
				id, pid := r.ID, fmt.Sprint(r.PID)
				if id == "" {
					id = "-"
				}
				if r.PID == 0 {
					pid = "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, id, r.VMM, pid, st, r.Created.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
}
