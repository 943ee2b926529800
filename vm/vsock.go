package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/pettyvm/petty/vsock"
)

// DialVsock connects to port on the guest through the VM's vsock device,
// retrying while nothing listens on that port yet, until ctx ends.
func (m *Machine) DialVsock(ctx context.Context, port uint32) (net.Conn, error) {
	if m.cfg.Vsock == nil {
		return nil, opError("dial vsock", m.id, ErrNoVsock)
	}
	_, be, err := m.current(Running, Paused)
	if err != nil {
		return nil, opError("dial vsock", m.id, err)
	}
	conn, err := be.dialVsock(ctx, port)
	if err != nil {
		return nil, opError("dial vsock", m.id, err)
	}
	return conn, nil
}

// ListenVsock listens for connections that the guest opens to host port
// port through the VM's vsock device. Under Firecracker that is the unix
// socket "<Vsock.Path>_<port>" (hybrid vsock); it may be created before
// Start (it then creates the run directory). Closing the listener removes the socket. QEMU (vhost-vsock or
// virtio-serial) does not support it: the error wraps errors.ErrUnsupported.
func (m *Machine) ListenVsock(port uint32) (net.Listener, error) {
	switch {
	case m.cfg.Vsock == nil:
		return nil, opError("listen vsock", m.id, ErrNoVsock)
	case m.cfg.VMM != Firecracker:
		return nil, opError("listen vsock", m.id, fmt.Errorf("%s: %w", m.cfg.VMM, errors.ErrUnsupported))
	}
	m.mu.Lock()
	if m.state == Destroyed {
		m.mu.Unlock()
		return nil, opError("listen vsock", m.id, ErrDestroyed)
	}
	if filepath.Dir(m.cfg.Vsock.Path) == m.runDir {
		// Before the first Start, the socket's directory is made here.
		if err := m.makeRunDir(); err != nil {
			m.mu.Unlock()
			return nil, opError("listen vsock", m.id, err)
		}
	}
	m.mu.Unlock()
	l, err := vsock.Listen(m.cfg.Vsock.Path, port)
	if err != nil {
		return nil, opError("listen vsock", m.id, err)
	}
	return l, nil
}
