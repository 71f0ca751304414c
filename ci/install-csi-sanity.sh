#!/usr/bin/env bash
# Installs csi-sanity, the community CSI conformance suite (kubernetes-csi/csi-test), at a
# pinned version through the Go module proxy, and prints the binary's path. The binary is
# cached under $TRAINRIDE_CACHE (default ~/.cache/trainride): a second run costs nothing.
# Needs Go (1.24 or newer); nothing of csi-test is kept in this repository.
set -euo pipefail

VERSION=v5.6.0
MODULE=github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity
dir=${TRAINRIDE_CACHE:-$HOME/.cache/trainride}/csi-sanity-$VERSION
bin=$dir/csi-sanity

if [ ! -x "$bin" ]; then
  command -v go >/dev/null || {
    echo "csi-sanity needs Go to build (https://go.dev/dl or your distribution's golang)" >&2
    exit 2
  }
  mkdir -p "$dir"
  started=$SECONDS
  # Only the proxy: the machine may reach no VCS host.
  GOBIN=$dir GOFLAGS=-mod=mod GOPROXY=${GOPROXY:-https://proxy.golang.org} \
    go install "$MODULE@$VERSION" >&2
  echo "built csi-sanity $VERSION in $((SECONDS - started)) s" >&2
fi
echo "$bin"
