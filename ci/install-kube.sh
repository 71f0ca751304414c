#!/usr/bin/env bash
# Builds the real Kubernetes programs the real-control-plane mode and its CI checks run,
# at pinned versions, from the Go module proxy, and prints the directory that holds
# them. Nothing of Kubernetes is kept in this repository: ci/kube/*/go.mod name the
# modules and versions (and go.sum their hashes), and the binaries are cached under
# $TRAINRIDE_CACHE (default ~/.cache/trainride)/kube-<digest of those files>: a second
# run costs nothing, a change of a pin builds anew.
#
#   ci/kube/kubernetes: k8s.io/kubernetes v1.36.3 (kube-apiserver,
#     kube-controller-manager, kube-scheduler, kubectl). Its go.mod replaces every
#     staging module (k8s.io/api, client-go, ...) with the same release's tag v0.36.3,
#     as the module cannot be installed with `go install path@version` (its own go.mod
#     replaces them with ./staging directories).
#   ci/kube/etcd: go.etcd.io/etcd/server/v3 v3.6.16 (etcd), in a module of its own so
#     that its dependencies do not move Kubernetes' pins.
#   ci/kube/helm: helm.sh/helm/v4 v4.3.2 (helm: deploy/ is a chart), in a module of its
#     own for the same reason.
#   ci/kube/sidecars: the CSI sidecars external-provisioner v6.3.0, external-attacher
#     v4.12.0, external-resizer v2.2.0 and external-snapshotter v8.6.0 (csi-snapshotter
#     and the cluster's snapshot-controller), with the staging modules at v0.36.1 as
#     their own go.mod files pin them.
#
# Beside bin/ it keeps, in snapshot/, the VolumeSnapshot CRDs and snapshot-controller's
# RBAC from the same external-snapshotter release (its client/v8 module and
# deploy/kubernetes/snapshot-controller): the add-on a cluster needs before
# csi-snapshotter can work, as the real control plane installs it.
#
# Needs Go 1.26 (the modules say `go 1.26.0`).
set -euo pipefail
cd "$(dirname "$0")/.."

digest=$(cat ci/kube/*/go.mod ci/kube/*/go.sum ci/install-kube.sh | sha256sum | cut -c1-12)
dir=${TRAINRIDE_CACHE:-$HOME/.cache/trainride}/kube-$digest
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl csi-provisioner csi-attacher
  csi-resizer csi-snapshotter snapshot-controller helm)
snapshot_yaml=(crd-volumesnapshotclasses.yaml crd-volumesnapshotcontents.yaml crd-volumesnapshots.yaml
  rbac-snapshot-controller.yaml)

complete() {
  local b
  for b in "${want[@]}"; do [ -x "$dir/bin/$b" ] || return 1; done
  for y in "${snapshot_yaml[@]}"; do [ -s "$dir/snapshot/$y" ] || return 1; done
}

if ! complete; then
  command -v go >/dev/null || {
    echo "the real control plane needs Go 1.26 to build Kubernetes (https://go.dev/dl)" >&2
    exit 2
  }
  mkdir -p "$dir/bin"
  export GOFLAGS=-mod=mod GOPROXY=${GOPROXY:-https://proxy.golang.org}
  # The programs report the release they are built from (kubectl version, /version).
  version=k8s.io/component-base/version
  ldflags="-s -w -X $version.gitVersion=v1.36.3 -X $version.gitMajor=1 -X $version.gitMinor=36"
  ldflags="$ldflags -X $version.gitTreeState=clean"
  started=$SECONDS
  (cd ci/kube/kubernetes && go build -trimpath -ldflags "$ldflags" -o "$dir/bin/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl) >&2
  echo "built kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v1.36.3 in $((SECONDS - started)) s" >&2
  started=$SECONDS
  (cd ci/kube/etcd && go build -trimpath -ldflags "-s -w" -o "$dir/bin/etcd" \
    go.etcd.io/etcd/server/v3) >&2
  echo "built etcd v3.6.16 in $((SECONDS - started)) s" >&2
  started=$SECONDS
  version=helm.sh/helm/v4/internal/version
  (cd ci/kube/helm && go build -trimpath -ldflags "-s -w -X $version.version=v4.3.2" \
    -o "$dir/bin/helm" helm.sh/helm/v4/cmd/helm) >&2
  echo "built helm v4.3.2 in $((SECONDS - started)) s" >&2
  started=$SECONDS
  (cd ci/kube/sidecars && go build -trimpath -ldflags "-s -w" -o "$dir/bin/" \
    github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner \
    github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher \
    github.com/kubernetes-csi/external-resizer/v2/cmd/csi-resizer \
    github.com/kubernetes-csi/external-snapshotter/v8/cmd/csi-snapshotter \
    github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller) >&2
  echo "built csi-provisioner v6.3.0, csi-attacher v4.12.0, csi-resizer v2.2.0," \
    "csi-snapshotter and snapshot-controller v8.6.0 in $((SECONDS - started)) s" >&2
  mkdir -p "$dir/snapshot"
  snap=$(cd ci/kube/sidecars && go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/v8)
  client=$(cd ci/kube/sidecars && go list -m -f '{{.Dir}}' github.com/kubernetes-csi/external-snapshotter/client/v8)
  for kind in volumesnapshotclasses volumesnapshotcontents volumesnapshots; do
    cp "$client/config/crd/snapshot.storage.k8s.io_$kind.yaml" "$dir/snapshot/crd-$kind.yaml"
  done
  cp "$snap/deploy/kubernetes/snapshot-controller/rbac-snapshot-controller.yaml" "$dir/snapshot/"
  chmod u+w "$dir"/snapshot/*.yaml
  complete || { echo "install-kube: a program is missing from $dir/bin" >&2; exit 1; }
fi
echo "$dir/bin"
