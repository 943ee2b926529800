#!/usr/bin/env bash
# Sets up a Debian 12 machine (apt) and runs every check and test of petty:
# gofmt, go vet, go test -race (unit, fake-Firecracker, real QEMU/TCG guests),
# a short fuzz run, a build of the bench module, the containerd shim's module
# (real containerd + ctr + QEMU guests), and last a kernel compiled from
# Debian's linux-source-6.1 booted under QEMU (about 9 minutes on 2 cores).
# go test builds the default Debian image with mmdebstrap once (image's
# TestDebianImage, testutil.DebianImage): 3 minutes alone, 8 on 2 busy cores,
# then a cache hit (0.4 s) from $TMPDIR/petty-test-images/ in later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh --with-kernel-source --with-containerd
export PATH="$PATH:/usr/local/go/bin"

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

echo "== go vet"
go vet ./...
(cd bench && go vet ./...)

echo "== npm ci: E2B's JS SDK, pinned, for e2bserver's end-to-end test"
(cd e2bserver/testdata/js && npm ci --no-audit --no-fund)

echo "== go test -race"
go test -race -count=1 -timeout 40m ./... 2>&1 | tee /tmp/petty-test.log

echo "== fuzz (short)"
go test -run '^$' -fuzz '^FuzzFrame$' -fuzztime 20s ./internal/guest/
go test -run '^$' -fuzz '^FuzzHostFrames$' -fuzztime 20s ./agent/

echo "== bench module builds"
(cd bench && go build ./...)

echo "== containerd shim (nested module): vet, unit and end-to-end tests with a private containerd, ctr and crictl"
crictl_bin=$(mktemp -d)
GOBIN="$crictl_bin" go install sigs.k8s.io/cri-tools/cmd/crictl@v1.37.0
(cd cmd/containerd-shim-petty-v2 && go vet ./... &&
  PATH="$crictl_bin:$PATH" go test -race -count=1 -timeout 30m ./... 2>&1 | tee /tmp/petty-shim-test.log)
rm -rf "$crictl_bin"

echo "== kernel from source: compile linux-source-6.1 (≈9 min on 2 cores), boot it under QEMU TCG"
PETTY_TEST_KERNEL_SOURCE=1 go test -count=1 -timeout 40m -v -run '^TestKernelSourceBuild$' ./image/ 2>&1 | tee /tmp/petty-kernel-source-test.log
