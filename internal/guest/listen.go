package guest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/mdlayher/vsock"

	"github.com/pettyvm/petty/agent/wire"
)

// DefaultPort is the AF_VSOCK port petty-agent listens on by default.
const DefaultPort = wire.DefaultPort

// DefaultListen is petty-agent's default --listen URI.
const DefaultListen = "vsock://:1024"

// ErrBadListenURI is returned (wrapped) for a --listen URI that cannot be
// parsed or has an unsupported scheme.
var ErrBadListenURI = errors.New("agent: bad listen URI")

// ListenURI is a parsed --listen URI: vsock://:PORT, unix:///path or
// serial:///dev/virtio-ports/NAME.
type ListenURI struct {
	Scheme string // "vsock", "unix" or "serial"
	Port   uint32 // vsock only
	Path   string // unix and serial only
}

// ParseListenURI parses a --listen URI.
func ParseListenURI(s string) (ListenURI, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ListenURI{}, fmt.Errorf("%w %q: %w", ErrBadListenURI, s, err)
	}
	switch u.Scheme {
	case "vsock":
		port := uint64(DefaultPort)
		if p := u.Port(); p != "" {
			port, err = strconv.ParseUint(p, 10, 32)
			if err != nil {
				return ListenURI{}, fmt.Errorf("%w %q: port: %w", ErrBadListenURI, s, err)
			}
		}
		if u.Hostname() != "" || (u.Path != "" && u.Path != "/") {
			return ListenURI{}, fmt.Errorf("%w %q: want vsock://:PORT", ErrBadListenURI, s)
		}
		return ListenURI{Scheme: "vsock", Port: uint32(port)}, nil
	case "unix", "serial":
		if u.Host != "" || u.Path == "" {
			return ListenURI{}, fmt.Errorf("%w %q: want %s:///absolute/path", ErrBadListenURI, s, u.Scheme)
		}
		return ListenURI{Scheme: u.Scheme, Path: u.Path}, nil
	}
	return ListenURI{}, fmt.Errorf("%w %q: scheme must be vsock, unix or serial", ErrBadListenURI, s)
}

// String formats the URI back into its --listen form.
func (u ListenURI) String() string {
	if u.Scheme == "vsock" {
		return "vsock://:" + strconv.FormatUint(uint64(u.Port), 10)
	}
	return u.Scheme + "://" + u.Path
}

// listenStream opens a stream listener for a vsock or unix URI. A stale unix
// socket file is removed first.
func listenStream(u ListenURI) (net.Listener, error) {
	switch u.Scheme {
	case "vsock":
		return vsock.Listen(u.Port, nil)
	case "unix":
		if fi, err := os.Lstat(u.Path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			_ = os.Remove(u.Path)
		}
		return net.Listen("unix", u.Path)
	}
	return nil, fmt.Errorf("%w: %s is not a stream transport", ErrBadListenURI, u)
}
