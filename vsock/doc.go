// Package vsock connects the host to a Firecracker guest through Firecracker's
// hybrid vsock: the virtio-vsock device proxied by unix sockets on the host.
//
// Host-initiated connections (Dial, DialRetry) connect to the unix socket at
// the device's uds_path and ask Firecracker to forward them to a guest port
// with "CONNECT <port>\n"; Firecracker answers "OK <host_port>\n" once the
// guest accepted, or closes the connection when no guest process listens on
// the port.
//
// Guest-initiated connections to host port P arrive on the unix socket
// "<uds_path>_P", on which Listen listens.
package vsock
