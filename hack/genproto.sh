#!/bin/sh
# Regenerates agent/agentpb from agent/agentpb/agent.proto.
# Needs protoc plus the plugins pinned to the versions in go.mod:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc@v1.2.10
set -eu
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I agent/agentpb \
	--go_out=agent/agentpb --go_opt=paths=source_relative \
	--go-ttrpc_out=agent/agentpb --go-ttrpc_opt=paths=source_relative \
	agent/agentpb/agent.proto
