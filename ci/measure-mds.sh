#!/usr/bin/env bash
# Measures a REAL Ceph MDS, for calibrating the simulator's MDS model. Run by hand (as
# root, it mounts ceph-fuse), never in CI; it takes about 10-15 minutes with the defaults.
#
#   bash ci/measure-mds.sh            Markdown on stdout, progress on stderr
#
# Uses the cluster of ci/ceph-cluster.sh under $TRAINRIDE_CEPH_DIR (default
# /tmp/trainride-ceph). When none is running it starts one, and then stops it at the end;
# a cluster that was already running is left running. What it measures, in order:
#   1. idle: MDS traffic during a quiet window with N = 0 clients of ours (the mgr's own
#      sessions only), then with N = 1, 10, 50 idle ceph-fuse mounts of one subvolume
#      (clients are added step by step; a failed mount stops the steps there);
#   2. the MDS requests of one ceph-fuse mount + `stat`, and of one unmount (repeated);
#   3. the MDS requests of an untar (200 dirs x 20 files of 300 bytes) through one mount;
#   4. MDS memory (perf counters mds_mem, `cache status`, /proc VmRSS) with 0/1/10/50
#      sessions and with the untar's caps held.
# Every MDS figure is a difference of `perf dump` samples read from the MDS admin socket
# (no MDS traffic of their own); see ci/measure_mds.py. Raw samples and the Markdown stay
# in $MEASURE_OUT (default /tmp/measure-mds-<date>). On exit, also on failure or Ctrl-C,
# it unmounts its own mounts, removes its subvolume and stops the cluster it started.
#
# Knobs (environment): MEASURE_N_LIST ("1 10 50"), MEASURE_IDLE_SECS (120),
# MEASURE_IDLE_SETTLE (10 s between the last mount and the window), MEASURE_MOUNT_REPS (5),
# MEASURE_UNTAR_DIRS (200), MEASURE_UNTAR_FILES (20 per dir), MEASURE_UNTAR_BYTES (300),
# MEASURE_UNTAR_SETTLE (15 s), MEASURE_DRAIN_SECS (300: how long to wait for the mgr's
# own MDS sessions to close before the first window), MEASURE_OUT.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
D=${TRAINRIDE_CEPH_DIR:-/tmp/trainride-ceph}
CONF=$D/ceph.conf
KR=$D/ceph.client.admin.keyring
# Debian's python: the one the ceph tools use (any python3 would do for the helper).
PY=/usr/bin/python3
N_LIST=${MEASURE_N_LIST:-"1 10 50"}
IDLE_SECS=${MEASURE_IDLE_SECS:-120}
IDLE_SETTLE=${MEASURE_IDLE_SETTLE:-10}
MOUNT_REPS=${MEASURE_MOUNT_REPS:-5}
UNTAR_DIRS=${MEASURE_UNTAR_DIRS:-200}
UNTAR_FILES=${MEASURE_UNTAR_FILES:-20}
UNTAR_BYTES=${MEASURE_UNTAR_BYTES:-300}
UNTAR_SETTLE=${MEASURE_UNTAR_SETTLE:-15}
OUT=${MEASURE_OUT:-/tmp/measure-mds-$(date +%Y%m%d-%H%M%S)}

[ "$(id -u)" = 0 ] || { echo "needs root (ceph-fuse mounts, maybe the cluster)" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/measure-mds-work.XXXXXX)
MNT=$WORK/mnt
mkdir -p "$MNT"
STARTED=0
SUBVOL=""
SUBVOL_PATH=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
ceph_() { ceph -c "$CONF" -k "$KR" "$@" 2>>"$OUT/ceph-cli.log"; }
helper() { $PY "$HERE/measure_mds.py" "$@"; }
note() { helper note "$OUT" "$1" "$2"; }
note_text() { helper notes-append "$OUT" "$1"; }
ms_now() { date +%s%3N; }
cluster_up() { bash "$REPO/ci/ceph-cluster.sh" status >/dev/null 2>&1; }

# The ceph-fuse process whose argv holds mount point $1 (as ci/ceph-cluster.sh finds them).
fuse_pid_for() {
  local p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | head -1 | grep -q 'ceph-fuse$' &&
      tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qx -- "$1"; then
      echo "${p#/proc/}"
    fi
  done
}
our_mounts() { awk -v pre="$MNT/" 'index($2, pre) == 1 && $3 == "fuse.ceph-fuse" {print $2}' /proc/mounts; }

wait_pids_gone() { # wait_pids_gone <seconds> <pid...>
  local secs=$1 p alive
  shift
  for _ in $(seq $((secs * 10))); do
    alive=""
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=yes; done
    [ -z "$alive" ] && return 0
    sleep 0.1
  done
  return 1
}

# Unmount one of our mounts; wait until its ceph-fuse has exited (session closed).
umount_one() {
  local m=$1 pid
  pid=$(fuse_pid_for "$m")
  if ! timeout 10 umount "$m" 2>>"$OUT/ceph-fuse.log"; then
    log "umount $m failed or hung: lazy umount, stopping ceph-fuse $pid"
    umount -l "$m" 2>/dev/null || true
    for p in $pid; do kill -TERM "$p" 2>/dev/null || true; done
  fi
  # shellcheck disable=SC2086
  if [ -n "$pid" ] && ! wait_pids_gone 30 $pid; then
    log "ceph-fuse $pid still alive 30 s after umount: SIGKILL"
    for p in $pid; do kill -KILL "$p" 2>/dev/null || true; done
  fi
}

umount_ours() {
  local m
  for m in $(our_mounts); do umount_one "$m"; done
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ "$rc" = 0 ] || log "failed (rc $rc): cleaning up"
  umount_ours
  if [ -n "$SUBVOL" ] && cluster_up; then
    log "removing subvolume $SUBVOL"
    timeout 120 ceph -c "$CONF" -k "$KR" fs subvolume rm cephfs "$SUBVOL" --group_name csi 2>>"$OUT/ceph-cli.log" ||
      log "subvolume rm $SUBVOL failed"
  fi
  if [ "$STARTED" = 1 ]; then
    log "stopping the cluster this script started"
    bash "$REPO/ci/ceph-cluster.sh" stop >&2
  fi
  if [ -z "$(our_mounts)" ]; then
    rm -rf "$WORK"
  else
    log "mounts left under $WORK: not removing it"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the cluster -------------------------------------------------------------------------

if cluster_up; then
  log "using the running cluster under $D"
else
  log "no cluster running under $D: starting one (bash ci/ceph-cluster.sh start)"
  STARTED=1
  bash "$REPO/ci/ceph-cluster.sh" start >&2
fi
note started_cluster "$STARTED"

MDS=$(ceph_ fs status cephfs --format json | $PY -c '
import json, sys
d = json.load(sys.stdin)
act = [m for m in d["mdsmap"] if m.get("state") == "active" and m.get("rank") == 0]
print(act[0]["name"] if act else "")')
[ -n "$MDS" ] || { echo "no active MDS for cephfs" >&2; exit 1; }
MDS_ASOK=$(ceph-conf -c "$CONF" --name "mds.$MDS" --lookup admin_socket)
MDS_PIDFILE=$(ceph-conf -c "$CONF" --name "mds.$MDS" --lookup pid_file 2>/dev/null || true)
MDS_PID=""
[ -n "$MDS_PIDFILE" ] && [ -r "$MDS_PIDFILE" ] && MDS_PID=$(cat "$MDS_PIDFILE")
[ -n "$MDS_PID" ] || MDS_PID=$(pgrep -x -n ceph-mds || true)
[ -S "$MDS_ASOK" ] && [ -n "$MDS_PID" ] || { echo "MDS admin socket $MDS_ASOK or pid not found" >&2; exit 1; }
log "MDS mds.$MDS, pid $MDS_PID, admin socket $MDS_ASOK; output in $OUT"

S() { helper sample "$OUT" "$1" --mds-asok "$MDS_ASOK" --mds-pid "$MDS_PID" --mnt-prefix "$MNT"; }
ours() { helper ours --mds-asok "$MDS_ASOK" --mnt-prefix "$MNT"; }
wait_ours() { # wait_ours <count> <seconds>
  local i
  for i in $(seq $(($2 * 2))); do
    [ "$(ours)" = "$1" ] && return 0
    sleep 0.5
  done
  log "timed out waiting for $1 sessions of ours (have $(ours))"
  return 1
}

note start_time "\"$(date -Iseconds)\""
note host "\"$(hostname)\""
note nproc "$(nproc)"
note mem_total "\"$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)\""
note ceph_version "\"$(ceph --version)\""
note ceph_fuse_version "\"$(ceph-fuse --version 2>&1 | head -1)\""
note mds_version "\"$(helper asok "$MDS_ASOK" version | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d.get("version"), d.get("release"))')\""
note conf "\"$CONF\""
note keyring "\"$KR\""
note mds_name "\"$MDS\""
note mds_pid "$MDS_PID"
note mds_asok "\"$MDS_ASOK\""
note mds_config "$(helper asok-get "$MDS_ASOK" mds_cache_memory_limit mds_max_caps_per_client \
  mds_recall_max_caps mds_cap_revoke_eviction_timeout mds_tick_interval mds_reconnect_timeout)"
note mdsmap "$(ceph_ fs get cephfs -f json | $PY -c '
import json, sys
m = json.load(sys.stdin)["mdsmap"]
print(json.dumps({k: m[k] for k in ("session_timeout", "session_autoclose", "max_mds") if k in m}))')"
note idle_secs "$IDLE_SECS"
note idle_settle "$IDLE_SETTLE"
note mount_reps "$MOUNT_REPS"
note_text "top CPU users at the start (ps %CPU, an average over each process's life): $(ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{printf "%s %s%%; ", $2, $1}')"

SUBVOL=measure-mds-$$
log "ceph fs subvolume create cephfs $SUBVOL --group_name csi"
ceph_ fs subvolume create cephfs "$SUBVOL" --group_name csi
SUBVOL_PATH=$(ceph_ fs subvolume getpath cephfs "$SUBVOL" --group_name csi)
note subvolume "\"$SUBVOL\""
note subvol_path "\"$SUBVOL_PATH\""
# --pid_file: the cluster's conf gives every client.admin process the same pid file,
# which a second ceph-fuse cannot lock ("failed to lock pidfile", exit 33).
note mount_cmd "\"ceph-fuse -c $CONF -k $KR -r $SUBVOL_PATH --pid_file $WORK/pids/<name>.pid <mountpoint>\""

# Mounted per /proc/mounts (not `mountpoint`, which would stat the mount through FUSE).
is_mounted() { awk -v m="$1" '$2 == m && $3 == "fuse.ceph-fuse" {f = 1} END {exit !f}' /proc/mounts; }
mount_only() { # mount_only <mountpoint>
  mkdir -p "$1" "$WORK/pids"
  ceph-fuse -c "$CONF" -k "$KR" -r "$SUBVOL_PATH" --pid_file "$WORK/pids/$(basename "$1").pid" "$1" \
    >>"$OUT/ceph-fuse.log" 2>&1 && is_mounted "$1"
}
mount_one() { # mount_one <mountpoint>: mount, then stat its root
  mount_only "$1" && timeout 20 stat "$1" >/dev/null
}

# --- 1a. idle window without clients of ours (the baseline) -----------------------------

# The mgr's volumes module keeps the libcephfs session that ran `subvolume create` and
# `getpath` open for a while after its last use, then closes it; its close would land in
# some window. Wait for it (and any other session) to go, so that the windows only see
# our clients. Nothing below talks to the mgr until the cleanup.
others() { helper ours --others --mds-asok "$MDS_ASOK" --mnt-prefix "$MNT"; }
t0=$(date +%s)
while [ "$(others)" != 0 ] && [ $(($(date +%s) - t0)) -lt "${MEASURE_DRAIN_SECS:-300}" ]; do sleep 2; done
if [ "$(others)" = 0 ]; then
  note_text "sessions of other clients (the mgr's volumes module) closed $(($(date +%s) - t0)) s after subvolume getpath; the windows below ran with no MDS session but ours"
else
  note_text "after $(($(date +%s) - t0)) s, $(others) sessions of other clients (the mgr's) were still open: the N = 0 window includes them"
fi
log "other sessions: $(others) after $(($(date +%s) - t0)) s of waiting"
sleep 5
log "idle window N=0: ${IDLE_SECS} s"
S idle0_start
sleep "$IDLE_SECS"
S idle0_end

# --- 2. one mount and one unmount, repeated ----------------------------------------------

for i in $(seq "$MOUNT_REPS"); do
  m=$MNT/once$i
  S "mount${i}_pre"
  t0=$(ms_now)
  mount_only "$m"
  t1=$(ms_now)
  S "mount${i}_mounted"
  t2=$(ms_now)
  timeout 20 stat "$m" >/dev/null
  t3=$(ms_now)
  S "mount${i}_post"
  note "mount${i}_ms" $((t1 - t0))
  note "stat${i}_ms" $((t3 - t2))
  sleep 3
  S "umount${i}_pre"
  t0=$(ms_now)
  umount_one "$m"
  t1=$(ms_now)
  wait_ours 0 30
  S "umount${i}_post"
  note "umount${i}_ms" $((t1 - t0))
  rmdir "$m"
  sleep 2
done
log "mount/unmount: $MOUNT_REPS repetitions done"

# --- 1b + 4. N idle clients, added step by step ------------------------------------------

S mem_0
have=0
done_ns=()
failures=""
for n in $N_LIST; do
  log "mounting clients $((have + 1))..$n"
  ok=yes
  for i in $(seq $((have + 1)) "$n"); do
    if ! mount_one "$MNT/c$(printf %03d "$i")"; then
      failures+="mount of client $i (step N=$n) failed at $(date -Iseconds), load $(cut -d' ' -f1-3 /proc/loadavg); "
      ok=no
      break
    fi
    have=$i
  done
  if [ "$ok" != yes ] || ! wait_ours "$n" 60; then
    failures+="step N=$n abandoned with $have clients mounted and $(ours) sessions of ours open; "
    log "step N=$n failed: $failures"
    break
  fi
  [ "${#done_ns[@]}" = 0 ] && helper client-config "$OUT" --mnt-prefix "$MNT" --mds-asok "$MDS_ASOK"
  log "N=$n mounted ($(ours) sessions of ours); settle ${IDLE_SETTLE} s, then idle window ${IDLE_SECS} s"
  sleep "$IDLE_SETTLE"
  S "idle${n}_start"
  sleep "$IDLE_SECS"
  S "idle${n}_end"
  done_ns+=("$n")
  note idle_ns_done "[$(IFS=,; echo "${done_ns[*]}")]"
done
[ -n "$failures" ] && note mount_failures "\"$failures\""
log "unmounting the idle clients"
umount_ours
wait_ours 0 60 || true
sleep 2
S mem_after_idle_umount

# --- 3. untar through one mount ---------------------------------------------------------

log "building the tarball: $UNTAR_DIRS dirs x $UNTAR_FILES files x $UNTAR_BYTES bytes"
mkdir -p "$WORK/src/tree"
helper mkfiles "$WORK/src/tree" "$UNTAR_DIRS" "$UNTAR_FILES" "$UNTAR_BYTES"
tar -cf "$WORK/tree.tar" -C "$WORK/src" tree
rm -rf "$WORK/src"
# Counted from the tarball, not through the mount (a find there would add readdirs).
nfiles=$(tar -tvf "$WORK/tree.tar" | grep -c '^-')
ndirs=$(tar -tvf "$WORK/tree.tar" | grep -c '^d')
m=$MNT/untar
mount_one "$m"
wait_ours 1 30
sleep 5
S untar_pre
log "tar -xf tree.tar -C $m"
t0=$(ms_now)
tar -xf "$WORK/tree.tar" -C "$m"
t1=$(ms_now)
S untar_post
sleep "$UNTAR_SETTLE"
S untar_settled
note untar "$($PY -c '
import json, sys
a = sys.argv[1:]
print(json.dumps({"files": int(a[0]), "dirs": int(a[1]), "dirs_inner": int(a[2]), "files_per_dir": int(a[3]),
                  "file_bytes": int(a[4]), "tar_bytes": int(a[5]), "wall_s": round(int(a[6]) / 1000, 3),
                  "settle": int(a[7]), "cmd": "tar -xf tree.tar -C <mountpoint>",
                  "tar_create_cmd": "tar -cf tree.tar -C <local dir> tree"}))' \
  "$nfiles" "$ndirs" "$UNTAR_DIRS" "$UNTAR_FILES" "$UNTAR_BYTES" "$(stat -c %s "$WORK/tree.tar")" \
  $((t1 - t0)) "$UNTAR_SETTLE")"
log "untar: $nfiles files, $ndirs dirs in $((t1 - t0)) ms"
umount_one "$m"
wait_ours 0 30 || true
sleep 2
S untar_umounted

note_text "top CPU users at the end (ps %CPU, an average over each process's life): $(ps -eo pcpu=,comm= --sort=-pcpu | head -5 | awk '{printf "%s %s%%; ", $2, $1}')"
note end_time "\"$(date -Iseconds)\""
helper report "$OUT" >"$OUT/result.md"
cat "$OUT/result.md"
log "Markdown and raw samples in $OUT"
