// Package wire is the agent protocol that both petty's host client (package
// agent) and petty-agent in the guest (internal/guest) speak: the frame
// header and its limits, the request and response envelopes, status codes,
// the method names, flow-control windows and the serial handshake's lines.
// The messages themselves are the protobufs of package agentpb.
//
// A connection carries frames (see HeaderLen): the host opens calls on odd
// stream ids, increasing; the agent answers on the same id. Nothing here
// trusts the peer: every header is checked against a limit before memory is
// committed for its body.
package wire
