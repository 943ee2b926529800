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
		Long: `List the detached VMs: name, ID, VMM, VMM pid and state (starting, running,
exited, or corrupt for a state record petty cannot trust; petty rm NAME
removes the record of an exited or corrupt VM). ls changes no record; it frees
the run directories of VMs whose owning petty process died.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.reclaim()
			rs, err := a.list()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tVMM\tPID\tSTATE\tCREATED")
			for _, r := range rs {
				v := a.liveState(r)
				if r.corrupt != nil {
					a.logger().Debug("corrupt state record", "vm", r.Name, "why", r.corrupt)
					fmt.Fprintf(w, "%s\t-\t-\t-\t%s\t-\n", r.Name, v.state)
					continue
				}
				id, pid := r.ID, fmt.Sprint(v.pid)
				if id == "" {
					id = "-"
				}
				if v.pid == 0 {
					pid = "-"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, id, r.VMM, pid, v.state, r.Created.Local().Format(time.DateTime))
			}
			return w.Flush()
		},
	}
}
