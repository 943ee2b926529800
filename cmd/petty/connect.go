package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/pettyvm/petty/agent"
	"github.com/pettyvm/petty/vm"
	"github.com/pettyvm/petty/vsock"
)

// connectAgent connects to the agent of the detached VM r through the
// sockets it recorded: Firecracker's hybrid vsock (CONNECT 1024), or the
// Mux that the VM's owner serves on QEMU's serial channel (vm.AgentMuxSocket
// in its run directory), then authenticates with the VM's token
// (vm.AgentTokenFile). It retries until the agent answers a Ping or ctx
// ends.
func connectAgent(ctx context.Context, r *record) (*agent.Client, error) {
	delay := 5 * time.Millisecond
	for {
		c, err := tryConnectAgent(ctx, r)
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to the agent of VM %s: %w", r.Name, err)
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func tryConnectAgent(ctx context.Context, r *record) (*agent.Client, error) {
	token, err := vm.ReadAgentToken(r.RunDir)
	if err != nil {
		return nil, err
	}
	var conn net.Conn
	switch r.VMM {
	case vm.QEMU:
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", filepath.Join(r.RunDir, vm.AgentMuxSocket))
		if err != nil {
			return nil, err
		}
		conn = c
	default:
		c, err := vsock.DialRetry(ctx, r.VsockPath, agent.DefaultPort)
		if err != nil {
			return nil, err
		}
		conn = c
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := agent.Authenticate(pctx, conn, token); err != nil {
		return nil, err // it closed conn
	}
	client := agent.NewClient(conn)
	if _, err := client.Ping(pctx); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}
