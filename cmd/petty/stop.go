package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) stopCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop [flags] NAME...",
		Short: "Stop detached VMs gracefully and remove them",
		Long: `Ask each VM's guest to power off, send its VMM SIGTERM after three quarters
of --timeout and SIGKILL at --timeout, then remove its run directory and record.`,
		Args: minArgs(1, "the name of the VM to stop"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			return a.forEachVM(args, func(r *record) error {
				if r.corrupt != nil {
					_, err := a.attachable(r)
					return err
				}
				return a.stopVM(r, timeout, true)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for a graceful stop before killing the VMM")
	return cmd
}

func (a *app) rmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME...",
		Short: "Kill detached VMs and remove everything petty kept for them",
		Long: `Kill each VM's VMM, then remove its run directory and record. For a corrupt
record (see petty ls), remove that record file and nothing else.`,
		Args: minArgs(1, "the name of the VM to remove"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.forEachVM(args, func(r *record) error { return a.stopVM(r, time.Second, false) })
		},
	}
}

// forEachVM calls fn for the record of each name, going on after failures.
func (a *app) forEachVM(names []string, fn func(*record) error) error {
	a.reclaim()
	var errs []error
	for _, name := range names {
		r, err := a.load(name)
		if err == nil {
			err = fn(r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
