package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
)

// The benchmark re-executes itself to run each peer server (raw echo,
// minimal ttrpc, framing prototype) as a separate process, like the agent,
// so that every measurement crosses the same kind of connection: a unix
// socket between two processes.
const (
	roleEnv = "AGENTBENCH_ROLE" // echo, ttrpc or frame
	sockEnv = "AGENTBENCH_SOCK" // the unix socket to listen on
)

// serveRole runs the peer server named by $AGENTBENCH_ROLE, if any, and
// reports whether it did. A peer serves until it is signalled.
func serveRole() (bool, error) {
	role := os.Getenv(roleEnv)
	if role == "" {
		return false, nil
	}
	serve := map[string]func(net.Listener) error{
		"echo":  serveEcho,
		"ttrpc": serveTTRPC,
		"frame": serveFrame,
	}[role]
	if serve == nil {
		return true, fmt.Errorf("unknown %s %q", roleEnv, role)
	}
	ln, err := net.Listen("unix", os.Getenv(sockEnv))
	if err != nil {
		return true, err
	}
	return true, serve(ln)
}

// startPeer re-executes this program as the peer server role on sock.
func startPeer(role, sock string) (*childProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = serverEnv(roleEnv+"="+role, sockEnv+"="+sock)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return startChild(cmd, sock)
}
