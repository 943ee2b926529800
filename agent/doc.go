// Package agent is petty's guest agent protocol: the server that runs inside
// the guest as petty-agent, and the Client the host uses to talk to it.
//
// The wire protocol is ttrpc (github.com/containerd/ttrpc) carrying the
// protobuf messages of package agentpb. It runs over AF_VSOCK, a unix socket
// (tests, fake VMMs), or a single virtio-serial byte stream; the serial
// transport first runs a resynchronisation handshake (see SerialHandshake).
// Every connection then starts with an auth line carrying the VM's per-boot
// secret (see Authenticate). A Mux shares one connection among many
// clients, which a serial port needs.
//
// Exec, ReadFile and WriteFile are bidirectional streams with credit-based
// flow control: each side sends at most a window of data messages that the
// other side has not yet acknowledged, so ttrpc's bounded per-stream buffers
// never overflow however slow the reader is.
package agent
