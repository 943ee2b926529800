// Package agentpb holds the protobuf messages of petty's guest agent
// protocol, generated from agent.proto by protoc-gen-go alone (see
// hack/genproto.sh). The framing, envelopes and status codes around them
// are package wire.
package agentpb

//go:generate sh ../../hack/genproto.sh
