#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is needed (apt),
# builds petty and its guest agent, builds the default guest image (Debian,
# from the host's apt mirror; once, with progress, on first use), boots a
# real VM and runs a python one-liner in it.
#   bash hack/demo.sh                 # python3 in the default image
#   bash hack/demo.sh -- cat /etc/os-release
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/petty-agent ./cmd/petty-agent
go build -trimpath -o bin/petty ./cmd/petty
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- python3 -c 'import platform, sys; print(f"hello from python {sys.version.split()[0]} on {platform.platform()}")'
exec ./bin/petty run -- "$@"
