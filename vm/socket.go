package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pettyvm/petty/internal/retry"
)

// socketPollMax caps the backoff between attempts to reach a VMM's socket.
const socketPollMax = time.Millisecond

// socketBackoff is the backoff of polls of a VMM's control socket, stopped
// when the VMM exits.
func socketBackoff(exited <-chan struct{}) retry.Backoff {
	return retry.Backoff{Min: 100 * time.Microsecond, Max: socketPollMax, Stop: exited}
}

// waitForSocket waits until a unix socket at path accepts connections,
// polling with a short exponential backoff (from 100µs, capped at 1ms), then
// makes it private (0600). It fails when ctx ends or exited is closed (the
// VMM died first).
func waitForSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	var d net.Dialer
	err := retry.Do(ctx, socketBackoff(exited), func(ctx context.Context) error {
		conn, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	switch {
	case errors.Is(err, retry.ErrStopped):
		return fmt.Errorf("VMM exited before its socket %s appeared: %w", path, err)
	case err != nil:
		return fmt.Errorf("waiting for VMM socket %s: %w", path, err)
	}
	// VMMs create their sockets with the process umask; only the owner may
	// drive the VM (the run directory is 0700 as well).
	return os.Chmod(path, 0o600)
}
