package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// app is one invocation of petty: its standard streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	verbose  bool
	runDir   string // root of the VMs' run directories ("" = vm's default)
	stateDir string // where detached VMs are recorded ("" = default)
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr}
}

// rootCommand builds the command tree.
func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "petty",
		Short: "Run commands in throwaway microVMs (Firecracker or QEMU)",
		Long: `petty boots a microVM (Firecracker when KVM is usable, QEMU otherwise),
runs a command in it through the guest agent, and destroys it.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q", args[0])
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += fmt.Sprintf(" (did you mean %q?)", s[0])
				}
				return usagef("%s", msg)
			}
			return cmd.Help()
		},
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.CompletionOptions.DisableDefaultCmd = true

	pf := root.PersistentFlags()
	pf.BoolVarP(&a.verbose, "verbose", "v", false, "show the VMM's console and petty's logs on stderr")
	pf.StringVar(&a.runDir, "run-dir", os.Getenv("PETTY_RUN_DIR"),
		"root of the VMs' run directories (default /run/petty as root, else $XDG_RUNTIME_DIR/petty; env PETTY_RUN_DIR)")
	pf.StringVar(&a.stateDir, "state-dir", os.Getenv("PETTY_STATE_DIR"),
		"where detached VMs are recorded (default /run/petty/vms as root, else $XDG_RUNTIME_DIR/petty/vms; env PETTY_STATE_DIR)")

	root.AddCommand(
		a.runCommand(),
		a.execCommand(),
		a.logsCommand(),
		a.lsCommand(),
		a.stopCommand(),
		a.snapshotCommand(),
		a.rmCommand(),
		a.doctorCommand(),
		a.imageCommand(),
		a.versionCommand(),
		a.superviseCommand(),
		a.mcpCommand(),
		a.serveCommand(),
	)
	return root
}

// execute runs petty with args and returns the process's exit code.
func (a *app) execute(args []string) int {
	root := a.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(context.Background())
	return a.report(cmd, err)
}

// report prints err for a person and maps it to an exit code.
func (a *app) report(cmd *cobra.Command, err error) int {
	if err == nil {
		return 0
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	var ie *interruptedError
	if errors.As(err, &ie) {
		fmt.Fprintf(a.stderr, "petty: %s\n", ie)
		return ie.exitCode()
	}
	if errors.Is(err, errInterrupted) {
		fmt.Fprintln(a.stderr, "petty: interrupted")
		return exitSignalBase + int(syscall.SIGINT)
	}
	// Error texts may carry guest bytes (console tails): no terminal
	// control sequences get through.
	msg := escapeString(strings.TrimRight(err.Error(), "\n"))
	var gse *guestStartError
	if errors.As(err, &gse) {
		fmt.Fprintf(a.stderr, "petty: %s\n", msg)
		return gse.code
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.stderr, "petty: %s\nUsage: %s\nRun '%s --help' for more.\n", msg, cmd.UseLine(), cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "petty: %s\n", msg)
	return exitFailure
}

// logger returns petty's logger: text records on stderr with -v, nothing
// otherwise.
func (a *app) logger() *slog.Logger {
	if !a.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// exactArgs, minArgs and noArgs are cobra argument validators whose errors
// are usage errors.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("want %s, got %d argument(s)", what, len(args))
		}
		return nil
	}
}

func minArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("missing %s", what)
		}
		return nil
	}
}

func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}
