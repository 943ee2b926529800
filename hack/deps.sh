#!/usr/bin/env bash
# Installs what petty's build, image and tests need on a Debian 12 machine.
# Idempotent: skips apt when everything is present. Run as root (or via sudo).
#   bash hack/deps.sh                        # build petty, the guest image, boot VMs
#   bash hack/deps.sh --with-kernel-source   # also compile the microVM kernel (tests)
#   bash hack/deps.sh --with-containerd      # also containerd, runc and ctr (shim tests)
# The flags combine.
set -euo pipefail
with_kernel_source=false with_containerd=false
for a in "$@"; do
  case "$a" in
  --with-kernel-source) with_kernel_source=true ;;
  --with-containerd) with_containerd=true ;;
  *) echo "hack/deps.sh: unknown flag $a" >&2; exit 2 ;;
  esac
done

pkgs=(qemu-system-x86 busybox-static e2fsprogs iproute2 util-linux linux-image-cloud-amd64 ca-certificates)
# The Debian images of `petty image build` (image.Store): mmdebstrap (run as root,
# --mode=root; as another user it needs uidmap and /etc/subuid for --mode=unshare)
# and the archive's keys.
pkgs+=(mmdebstrap debian-archive-keyring)
# E2B's JS SDK in e2bserver's end-to-end test (npm ci in e2bserver/testdata/js):
# Node.js and npm from Debian, unless the machine already has both (a Node.js
# from elsewhere, e.g. NodeSource's nodejs, bundles npm and conflicts with
# Debian's npm package).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  pkgs+=(nodejs npm)
fi
# The kernel compiled from source (image.Options.KernelSource, petty image build
# --kernel-source): the source tarball and what tinyconfig + microvm.config needs
# (no libssl-dev or cpio: no modules, no module signing, no in-kernel headers).
if $with_kernel_source; then
  pkgs+=(linux-source-6.1 build-essential bc bison flex libelf-dev xz-utils)
fi
# The containerd shim (cmd/containerd-shim-petty-v2): Debian's containerd 1.6
# (ctr included) and runc, which containerd needs for its own plugins. The
# guest side uses QEMU's virtiofsd (/usr/lib/qemu/virtiofsd, in
# qemu-system-common) and script(1) from util-linux for the terminal test.
if $with_containerd; then
  pkgs+=(containerd runc)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "hack/deps.sh: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null; then
  echo "hack/deps.sh: Go 1.26 or newer is required (put it in PATH or /usr/local/go/bin)" >&2
  exit 1
fi
