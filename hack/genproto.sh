#!/bin/sh
# Regenerates agent/agentpb/agent.pb.go from agent/agentpb/agent.proto.
# Needs protoc (apt-get install protobuf-compiler) and protoc-gen-go pinned to
# the version in go.mod:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
# Only the messages are generated: the RPC layer (frames, envelopes, status
# codes) is hand-written in agent/wire, with no generated service code.
set -eu
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I agent/agentpb \
	--go_out=agent/agentpb --go_opt=paths=source_relative \
	agent/agentpb/agent.proto
