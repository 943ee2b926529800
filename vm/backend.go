package vm

import (
	"context"
	"net"
	"os/exec"
)

// backend is what a VMM must provide. The Machine owns the process (spawn,
// console, reaping, signals) and the state machine; a backend turns a Config
// into a command line and drives the VMM's control channel.
type backend interface {
	// command returns the VMM command for one boot; it removes stale
	// sockets first. The Machine sets Stdout/Stderr/SysProcAttr and starts it.
	command(b *boot) (*exec.Cmd, error)
	// start configures the spawned VMM and boots the guest. It returns once
	// the VMM acknowledged the boot, or with an error when ctx ends or the
	// process exits (b.exited is closed).
	start(ctx context.Context, b *boot) error
	// requestShutdown asks the guest to power off gracefully.
	requestShutdown(ctx context.Context) error
	// pause and resume freeze and thaw the guest's vCPUs.
	pause(ctx context.Context) error
	resume(ctx context.Context) error
	// dialVsock connects to a guest vsock port.
	dialVsock(ctx context.Context, port uint32) (net.Conn, error)
	// dialAgent connects to the guest agent's channel (vsock, or a
	// virtio-serial port multiplexed by an agent.Mux), retrying until the agent
	// answers or ctx ends. The returned conn carries the agent's protocol.
	dialAgent(ctx context.Context) (net.Conn, error)
	// agentToken is the current boot's agent token, which every
	// connection dialAgent returns must present (agent.Authenticate).
	agentToken() string
	// release frees per-boot resources (clients, sockets) once the VMM has
	// been reaped. It must be safe to call more than once.
	release()
}

// boot is the per-boot state shared between a Machine and its backend.
type boot struct {
	id     string
	cfg    *Config // defaulted; run-dir paths filled in
	runDir string
	exited <-chan struct{} // closed once the VMM has been reaped
	// restore, when set, makes this boot restore a snapshot (restore.go).
	restore *restorePlan
}

// agentPort is the guest agent's vsock port (agent.DefaultPort).
const agentPort = 1024
