#!/usr/bin/env bash
# The conformance bench against cephfs-csi on a real Ceph cluster (ci/ceph-cluster.sh
# start): the `cli` admin transport, ceph-fuse mounts, controller and node in one
# process. Needs root and the debug binaries of `cargo build --workspace`.
set -euo pipefail
cd "$(dirname "$0")/.."

D=${TRAINRIDE_CEPH_DIR:-/tmp/trainride-ceph}
[ -f "$D/cluster-config.json" ] || { echo "no cluster under $D: run ci/ceph-cluster.sh start" >&2; exit 2; }
cargo build --quiet --locked -p driver -p harness
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # Anything the bench left mounted under the work dir goes before the dir does.
  for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/mnt" "$work/stage"
printf 'clusterID: real\nfsName: cephfs\n' >"$work/params.yaml"
key=$(cat "$D/admin.key")
(
  umask 077
  for rpc in CreateVolumeSecret DeleteVolumeSecret ControllerValidateVolumeCapabilitiesSecret \
    NodeStageVolumeSecret CreateSnapshotSecret DeleteSnapshotSecret ControllerExpandVolumeSecret \
    ListSnapshotsSecret GetSnapshotSecret; do
    printf '%s:\n  adminID: admin\n  adminKey: "%s"\n' "$rpc" "$key"
  done >"$work/secrets.yaml"
)
./target/debug/cephfs-csi --endpoint "unix://$work/csi.sock" --node-id node-1 \
  --cluster-config "$D/cluster-config.json" --mounter fuse --state-dir "$work/state" \
  --ceph-timeout 120 >"$work/driver.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  [ -S "$work/csi.sock" ] && break
  sleep 0.1
done
# A real clone takes seconds and the driver answers Aborted until it is made; a CO
# retries, and so does this run (csi-sanity and the bench's default do not; the
# table marks each check that passed after retries).
./target/debug/harness conformance --endpoint "unix://$work/csi.sock" \
  --params "$work/params.yaml" --secrets "$work/secrets.yaml" \
  --mount-dir "$work/mnt/m" --staging-dir "$work/stage/s" --junit "$work/junit.xml" \
  --aborted-retry 120
if grep -q "$key" "$work/driver.log"; then
  echo "FAIL: the admin key is in the driver's log" >&2
  exit 1
fi
