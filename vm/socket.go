package vm

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

// socketPollMax caps the backoff between attempts to reach a VMM's socket.
const socketPollMax = time.Millisecond

// waitForSocket waits until a unix socket at path accepts connections,
// polling with a short exponential backoff (from 100µs, capped at 1ms), then
// makes it private (0600). It fails when ctx ends or exited is closed (the
// VMM died first).
func waitForSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	delay := 100 * time.Microsecond
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn.Close()
			// VMMs create their sockets with the process umask; only the
			// owner may drive the VM (the run directory is 0700 as well).
			return os.Chmod(path, 0o600)
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("waiting for VMM socket %s: %w (last error: %v)", path, ctx.Err(), err)
		case <-exited:
			timer.Stop()
			return fmt.Errorf("VMM exited before its socket %s appeared", path)
		case <-timer.C:
		}
		delay = min(delay*2, socketPollMax)
	}
}
