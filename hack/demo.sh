#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is needed (apt),
# builds petty and its guest agent, builds the guest image from Debian
# packages, boots a real VM and runs a command in it.
#   bash hack/demo.sh                 # runs `uname -a` in the guest
#   bash hack/demo.sh -- cat /proc/cpuinfo
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/petty-agent ./cmd/petty-agent
go build -trimpath -o bin/petty ./cmd/petty
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- uname -a
exec ./bin/petty run -- "$@"
