package main

import (
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/pettyvm/petty/agent"
)

// exitTimedOut is the exit code of a command killed by --timeout, as
// timeout(1) reports it.
const exitTimedOut = 124

// execFlags are the options of a guest command (petty run and petty exec).
type execFlags struct {
	env     []string
	workdir string
	user    string
	timeout time.Duration
}

// execFlagNames are the flags execFlags registers.
var execFlagNames = []string{"env", "workdir", "user", "timeout"}

func (x *execFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&x.env, "env", "e", nil, "set K=V in the command's environment (repeatable)")
	fs.StringVarP(&x.workdir, "workdir", "w", "", "the command's working directory in the guest (default: the user's home)")
	fs.StringVarP(&x.user, "user", "u", "", "run the command as this user of the guest (a name or uid; default root)")
	fs.DurationVar(&x.timeout, "timeout", 0, "kill the command's process group after this long and exit 124 (0: no limit)")
}

// changed reports whether any of the flags was given.
func (x *execFlags) changed(fs *pflag.FlagSet) bool {
	for _, n := range execFlagNames {
		if fs.Changed(n) {
			return true
		}
	}
	return false
}

// check validates the flags.
func (x *execFlags) check() error {
	for _, kv := range x.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usagef("--env %q: want KEY=VALUE", kv)
		}
	}
	if x.timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	return nil
}

// cmd is the guest command args with these options.
func (x *execFlags) cmd(args []string) *agent.Cmd {
	return &agent.Cmd{Args: args, Env: x.env, Dir: x.workdir, User: x.user, Timeout: x.timeout}
}
