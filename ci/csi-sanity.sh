#!/usr/bin/env bash
# csi-sanity (kubernetes-csi/csi-test, pinned in ci/install-csi-sanity.sh) against the
# cephfs-csi binary, run as a user would run it:
#
#   ci/csi-sanity.sh fake-ceph         cephfs-csi on a fake-ceph process, fake mounter
#   ci/csi-sanity.sh fake-ceph-attach  the same with --attach-required and a node registry
#   ci/csi-sanity.sh manila            --backend manila on fake-manila (over fake-ceph)
#   ci/csi-sanity.sh real-ceph         on ci/ceph-cluster.sh's cluster: the cli transport
#                                      and ceph-fuse (root; start the cluster first)
#
# Every run must show 0 failed, and the project's conformance bench, run next on the same
# driver, must agree with csi-sanity on every spec (harness conformance --compare-junit). Each skipped spec is listed with csi-sanity's reason,
# and a reason this script cannot explain by a capability the driver does not advertise
# fails the run. Afterwards the back end must hold nothing it did not hold before
# (subvolumes, snapshots, cephx users, journal entries, MDS sessions, Manila shares and
# access rules; ci/backend_state.py), nothing may be mounted under the run's directory,
# and no file there or in the driver's $TMPDIR may hold the admin key; the driver's log
# must not hold it either. The JUnit report goes to $OUT (default
# target/ci-artifacts/csi-sanity/<config>/junit.xml, the bench's bench.xml beside it).
#
# Needs Go (csi-sanity is built once and cached), python3, and the debug binaries
# (built here).
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-}
case "$config" in
  fake-ceph | fake-ceph-attach | manila | real-ceph) ;;
  *)
    echo "usage: $0 fake-ceph|fake-ceph-attach|manila|real-ceph" >&2
    exit 2
    ;;
esac
started=$SECONDS
out=${OUT:-target/ci-artifacts/csi-sanity/$config}
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
sanity=$(bash ci/install-csi-sanity.sh)
cargo build --quiet --locked -p driver -p fake-ceph -p fake-manila -p harness

work=$(mktemp -d)
pids=()
cleanup() {
  local p m
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL ($config): $*" >&2; exit 1; }

# The first line of a background process's stdout, once it is there.
first_line() {
  for _ in $(seq 200); do
    [ -s "$1" ] && { head -n1 "$1"; return; }
    sleep 0.05
  done
  fail "no URL in $1"
}

mkdir -p "$work/tmp" "$work/mnt" "$work/stage"
params=$work/params.yaml
state=(python3 ci/backend_state.py take)
driver_args=(--endpoint "unix://$work/csi.sock" --node-id sanity-node --state-dir "$work/state")
sanity_args=()
rpcs="CreateVolumeSecret DeleteVolumeSecret ControllerPublishVolumeSecret
  ControllerUnpublishVolumeSecret ControllerValidateVolumeCapabilitiesSecret
  NodeStageVolumeSecret NodePublishVolumeSecret CreateSnapshotSecret DeleteSnapshotSecret
  ControllerExpandVolumeSecret ListSnapshotsSecret GetSnapshotSecret"

start_fake_ceph() {
  ./target/debug/fake-ceph --listen 127.0.0.1:0 --keyring-out "$work/keyring" \
    >"$work/ceph.out" 2>"$work/ceph.err" &
  pids+=($!)
  ceph_url=$(first_line "$work/ceph.out")
  key=$(awk '/key =/ {print $3}' "$work/keyring")
  (umask 077 && printf '%s\n' "$key" >"$work/admin.key")
  state+=(--fake-ceph "$ceph_url" --keyring "$work/keyring")
}

case "$config" in
  fake-ceph | fake-ceph-attach)
    start_fake_ceph
    extra=""
    if [ "$config" = fake-ceph-attach ]; then
      # The node plugin records itself when it answers NodeGetInfo; the controller then
      # answers ControllerPublishVolume to any other node with NotFound.
      extra=", \"nodeCredentials\": {\"userID\": \"admin\", \"keyFile\": \"$work/admin.key\"}"
      driver_args+=(--attach-required)
    fi
    cat >"$work/clusters.json" <<EOF
[{"clusterID": "c1", "monitors": ["127.0.0.1:6789"], "cephFS": {"subvolumeGroup": "csi"},
  "admin": {"transport": "http", "url": "$ceph_url"},
  "controllerCredentials": {"userID": "admin", "keyFile": "$work/admin.key"}$extra}]
EOF
    driver_args+=(--cluster-config "$work/clusters.json" --mounter fake)
    printf 'clusterID: c1\nfsName: cephfs\n' >"$params"
    (umask 077 && for rpc in $rpcs; do
      printf '%s:\n  adminID: admin\n  adminKey: "%s"\n' "$rpc" "$key"
    done >"$work/secrets.yaml")
    ;;
  manila)
    start_fake_ceph
    ./target/debug/fake-manila --listen 127.0.0.1:0 --ceph-url "$ceph_url" \
      --ceph-keyring "$work/keyring" --delay-ms 0 --quota shares=-1,gigabytes=-1,snapshots=-1 \
      >"$work/manila.out" 2>"$work/manila.err" &
    pids+=($!)
    # Its first line is Keystone's auth URL; the catalog leads to Manila's endpoint.
    auth_url=$(first_line "$work/manila.out")
    state+=(--manila-auth "$auth_url")
    # The node plugin maps the share's monitors to this cluster for its fake mounts.
    cat >"$work/clusters.json" <<EOF
[{"clusterID": "c1", "monitors": ["127.0.0.1:6789"],
  "admin": {"transport": "http", "url": "$ceph_url"}}]
EOF
    driver_args+=(--backend manila --cluster-config "$work/clusters.json" --mounter fake)
    printf 'type: cephfstype\n' >"$params"
    (umask 077 && for rpc in $rpcs; do
      printf '%s:\n  os-authURL: "%s"\n  os-userName: demo\n  os-password: "%s"\n  os-projectName: demo\n  os-domainName: Default\n' \
        "$rpc" "$auth_url" demo
    done >"$work/secrets.yaml")
    key=demo
    ;;
  real-ceph)
    D=${TRAINRIDE_CEPH_DIR:-/tmp/trainride-ceph}
    [ -f "$D/cluster-config.json" ] || fail "no cluster under $D: run ci/ceph-cluster.sh start"
    key=$(cat "$D/admin.key")
    state+=(--ceph-conf "$D/ceph.conf" --keyring "$D/ceph.client.admin.keyring")
    driver_args+=(--cluster-config "$D/cluster-config.json" --mounter fuse --ceph-timeout 120)
    printf 'clusterID: real\nfsName: cephfs\n' >"$params"
    (umask 077 && for rpc in $rpcs; do
      printf '%s:\n  adminID: admin\n  adminKey: "%s"\n' "$rpc" "$key"
    done >"$work/secrets.yaml")
    ;;
esac

"${state[@]}" >"$work/before.json"
# At debug the driver logs every RPC that succeeds with its duration (never a secret).
RUST_LOG=info,driver::driver=debug TMPDIR=$work/tmp ./target/debug/cephfs-csi "${driver_args[@]}" \
  >"$work/driver.log" 2>&1 &
driver_pid=$!
pids+=("$driver_pid")
for _ in $(seq 200); do
  [ -S "$work/csi.sock" ] && break
  kill -0 "$driver_pid" 2>/dev/null || { cat "$work/driver.log" >&2; fail "the driver exited"; }
  sleep 0.05
done

echo "== csi-sanity ($config)"
sanity_started=$SECONDS
set +e
"$sanity" --csi.endpoint "unix://$work/csi.sock" --csi.testvolumeparameters "$params" \
  --csi.secrets "$work/secrets.yaml" --csi.mountdir "$work/mnt/target" \
  --csi.stagingdir "$work/stage/staging" --ginkgo.junit-report "$out/junit.xml" \
  --ginkgo.no-color "${sanity_args[@]}" >"$out/csi-sanity.log" 2>&1
rc=$?
set -e
sanity_secs=$((SECONDS - sanity_started))
tail -n 4 "$out/csi-sanity.log"
python3 ci/sanity_report.py "$out/junit.xml" "$config" || rc=1
[ "$rc" = 0 ] || {
  grep -E "^\s*\[FAIL\]" "$out/csi-sanity.log" >&2 || true
  fail "csi-sanity failed (log: $out/csi-sanity.log)"
}

# The project's own bench on the same driver, compared spec by spec with csi-sanity's
# report: any disagreement is a bug in one of the two.
echo "== the conformance bench on the same driver, compared with csi-sanity"
bench_started=$SECONDS
mkdir -p "$work/mnt/bench" "$work/stage/bench"
if ! ./target/debug/harness conformance --endpoint "unix://$work/csi.sock" \
  --params "$params" --secrets "$work/secrets.yaml" --mount-dir "$work/mnt/bench" \
  --staging-dir "$work/stage/bench" --junit "$out/bench.xml" \
  --compare-junit "$out/junit.xml" >"$out/bench.log" 2>&1; then
  grep -E "^(Disagreements|Missing)" -A20 "$out/bench.log" >&2 || tail -n 40 "$out/bench.log" >&2
  fail "the bench disagrees with csi-sanity (log: $out/bench.log)"
fi
grep -E "^compared [0-9]+ csi-sanity specs" "$out/bench.log"
grep -E "checks?:? .*pass" "$out/bench.log" | tail -n 1 || true
bench_secs=$((SECONDS - bench_started))

# The driver stops as it would in a rolling update; then nothing may be left.
kill -TERM "$driver_pid"
wait "$driver_pid" 2>/dev/null || true
cp "$work/driver.log" "$out/driver.log"
"${state[@]}" >"$work/after.json"
python3 ci/backend_state.py diff "$work/before.json" "$work/after.json" || fail "the back end kept what csi-sanity made"
mounted=$(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts)
[ -z "$mounted" ] || fail "still mounted: $mounted"
records=$(find "$work/state" -type f 2>/dev/null | head -5)
[ -z "$records" ] || fail "mount records left in the state dir: $records"
if [ "$key" != demo ]; then
  leaked=$(grep -rlF --exclude=keyring --exclude=admin.key --exclude=secrets.yaml \
    --exclude=clusters.json -- "$key" "$work" 2>/dev/null || true)
  [ -z "$leaked" ] || fail "files holding the admin key: $leaked"
fi
# How long CreateVolume took for csi-sanity's two clones (it waits for the clone within
# the call).
for what in vol-from-snap vol-from-vol; do
  took=$(sed 's/\x1b\[[0-9;]*m//g' "$out/driver.log" |
    sed -n "s/.*method=\"CreateVolume\" volume=sanity-controller-$what-[0-9A-F-]*}.* took_ms=\([0-9]*\).*/\1/p" | head -1)
  [ -z "$took" ] || echo "CreateVolume of csi-sanity's clone ($what): $took ms"
done
echo "csi-sanity ($config): $sanity_secs s for the suite, $bench_secs s for the bench, $((SECONDS - started)) s in all; nothing left behind"
