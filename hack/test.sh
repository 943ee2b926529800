#!/usr/bin/env bash
# Sets up a Debian 12 machine (apt) and runs every check and test of petty:
# gofmt, go vet, go test -race (unit, fake-Firecracker, real QEMU/TCG guests),
# a short fuzz run, and a build of the bench module.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
export PATH="$PATH:/usr/local/go/bin"

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

echo "== go vet"
go vet ./...
(cd bench && go vet ./...)

echo "== go test -race"
go test -race -count=1 -timeout 40m ./... 2>&1 | tee /tmp/petty-test.log

echo "== fuzz (short)"
go test -run '^$' -fuzz '^FuzzFrame$' -fuzztime 20s ./agent/

echo "== bench module builds"
(cd bench && go build ./...)
