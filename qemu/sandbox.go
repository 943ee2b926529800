package qemu

import (
	"context"
	"os/exec"
	"sync"
	"time"
)

// SandboxOptions is the value of -sandbox that petty runs QEMU with: QEMU's
// seccomp filter, denying obsolete system calls, privilege elevation
// (setuid and friends), spawning processes (fork, execve) and resource
// control (sched_setaffinity, setpriority...).
const SandboxOptions = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"

// sandboxProbeTimeout bounds the probe of one binary.
const sandboxProbeTimeout = 10 * time.Second

var sandboxProbes sync.Map // bin → *sandboxProbe

type sandboxProbe struct {
	once sync.Once
	ok   bool
}

// SandboxSupported reports whether bin can run with -sandbox
// SandboxOptions: QEMU built with seccomp, and a filter that installs here.
// It runs "bin -sandbox SandboxOptions -M help" (QEMU installs the filter
// before it handles -M help) once per process and binary.
func SandboxSupported(bin string) bool {
	v, _ := sandboxProbes.LoadOrStore(bin, &sandboxProbe{})
	p := v.(*sandboxProbe)
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), sandboxProbeTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-sandbox", SandboxOptions,
			"-nodefaults", "-no-user-config", "-display", "none", "-M", "help")
		p.ok = cmd.Run() == nil
	})
	return p.ok
}
