package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
)

// unsupportedBackend stands in for a VMM this build cannot drive.
type unsupportedBackend struct{ vmm VMM }

var errUnsupported = errors.New("not supported")

func (u *unsupportedBackend) command(*boot) (*exec.Cmd, error) {
	return nil, fmt.Errorf("VMM %s: %w", u.vmm, errUnsupported)
}
func (u *unsupportedBackend) start(context.Context, *boot) error    { return errUnsupported }
func (u *unsupportedBackend) requestShutdown(context.Context) error { return errUnsupported }
func (u *unsupportedBackend) pause(context.Context) error           { return errUnsupported }
func (u *unsupportedBackend) resume(context.Context) error          { return errUnsupported }
func (u *unsupportedBackend) release()                              {}
func (u *unsupportedBackend) dialAgent(context.Context) (net.Conn, error) {
	return nil, errUnsupported
}
func (u *unsupportedBackend) dialVsock(context.Context, uint32) (net.Conn, error) {
	return nil, errUnsupported
}
