#!/bin/sh
# Regenerates the Go code of E2B's envd services (e2b/envdpb/process and
# e2b/envdpb/filesystem: messages and Connect handlers) from their .proto files.
# Needs protoc (apt-get install protobuf-compiler) and the generators pinned to
# the versions in go.mod:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
set -eu
cd "$(dirname "$0")/.."
PATH="$(go env GOPATH)/bin:$PATH"
for svc in process filesystem; do
	protoc -I e2b/envdpb/$svc \
		--go_out=e2b/envdpb/$svc --go_opt=paths=source_relative \
		--connect-go_out=e2b/envdpb/$svc --connect-go_opt=paths=source_relative \
		e2b/envdpb/$svc/$svc.proto
done
