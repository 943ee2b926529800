// Package agent is the host side of petty's guest agent protocol: the
// Client that the host uses to talk to petty-agent inside a guest (Exec,
// Output, files, Ping, Shutdown, Refresh), its errors, and the host side of the
// serial transport's handshake (SerialHandshake).
//
// The protocol itself (frames, envelopes, status codes, flow-control
// windows) is package wire, shared with the agent, whose messages are the
// protobufs of package agentpb. It runs over AF_VSOCK, a unix socket
// (tests, fake VMMs), or a single virtio-serial byte stream. The agent, the
// guest side, lives in internal/guest and is linked only by
// cmd/petty-agent: this package links neither it nor any RPC framework.
// Every connection starts with an auth line carrying the VM's per-boot
// secret (see Authenticate). A Mux shares one connection among many
// clients, which a serial port needs.
//
// Exec, ReadFile and WriteFile are bidirectional streams with credit-based
// flow control: each side sends at most a window of data messages that the
// other side has not yet acknowledged. The guest is untrusted: the Client
// enforces its own limits on whatever the agent sends (see Client).
package agent
