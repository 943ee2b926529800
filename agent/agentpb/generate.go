// Package agentpb holds the protobuf messages and ttrpc service of petty's
// guest agent protocol, generated from agent.proto.
package agentpb

//go:generate sh ../../hack/genproto.sh
