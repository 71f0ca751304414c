#!/usr/bin/env bash
# A real one-node Ceph cluster (Debian's packages) on 127.0.0.1, for the contract and
# end-to-end tests. Facts behind every setting: ../shared/reference/real-ceph.md.
#
#   ci/ceph-cluster.sh start    install what is missing, bootstrap, wait until ready
#   ci/ceph-cluster.sh stop     unmount its ceph-fuse mounts, stop only its own daemons
#   ci/ceph-cluster.sh status   print `ceph -s`, exit 1 when not running
#
# Everything lives under $TRAINRIDE_CEPH_DIR (default /tmp/trainride-ceph); /etc/ceph is
# never touched. `start` wipes an earlier cluster there. Ready means HEALTH_OK, every PG
# active+clean and an MDS up:active; then the file system `cephfs` and the subvolume
# group `csi` exist and these files are written:
#   ceph.conf, ceph.client.admin.keyring   the cluster's conf and admin keyring
#   admin.key                             the bare admin key (0600)
#   cluster-config.json                   a cephfs-csi --cluster-config (cli transport)
#   env                                   TRAINRIDE_REAL_CEPH=<dir>, for the tests
# Needs root (packages, ceph-fuse mounts). Uses ports 3300, 6789 and 6800-6811.
set -euo pipefail

D=${TRAINRIDE_CEPH_DIR:-/tmp/trainride-ceph}
CONF=$D/ceph.conf
ADMIN_KR=$D/ceph.client.admin.keyring
PACKAGES="ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph-common uuid-runtime"
# Debian's ceph tools need Debian's python (it has the rados bindings), not a pyenv one.
PY=/usr/bin/python3

ceph_() { ceph -c "$CONF" -k "$ADMIN_KR" "$@"; }
now() { date +%s.%N; }
since() { $PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

install_packages() {
  local missing=""
  for b in ceph-mon ceph-mgr ceph-osd ceph-mds ceph-fuse ceph uuidgen; do
    command -v "$b" >/dev/null || missing=yes
  done
  [ -z "$missing" ] && return 0
  echo "installing: $PACKAGES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
}

# ceph-fuse processes whose argv holds mount point $1.
fuse_pids_for() {
  local p
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | head -1 | grep -q 'ceph-fuse$' &&
      tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qx -- "$1"; then
      echo "${p#/proc/}"
    fi
  done
}

# A ceph-fuse mount left behind once the cluster is gone hangs whatever touches it, so
# every ceph-fuse mount goes first: umount with a deadline, else lazy umount and its PID.
umount_fuse() {
  local m pids p
  for m in $(awk '$3=="fuse.ceph-fuse"{print $2}' /proc/mounts); do
    pids=$(fuse_pids_for "$m")
    if ! timeout 10 umount "$m" 2>/dev/null; then
      echo "umount $m failed or hung: lazy umount, stopping ceph-fuse $pids"
      umount -l "$m" 2>/dev/null || true
      for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
      sleep 2
      for p in $pids; do kill -0 "$p" 2>/dev/null && kill -KILL "$p"; done
    fi
  done
}

stop_daemon() {
  local pidf=$D/run/$1.pid pid
  [ -f "$pidf" ] || return 0
  pid=$(cat "$pidf")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q ceph "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$1 did not stop in 30 s: SIGKILL"
      kill -KILL "$pid"
    fi
  fi
  rm -f "$pidf"
}

stop() {
  umount_fuse
  # The mgr before the MDS: its volumes module's sessions close, and the next MDS start
  # does not wait in up:reconnect for them.
  local n
  for n in mgr.x mds.a osd.0 mon.a; do stop_daemon "$n"; done
  echo "stopped"
}

write_conf() {
  cat >"$CONF" <<EOF
[global]
fsid = $1
mon_host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
public_network = 127.0.0.0/8
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_data_avail_warn = 2
# CI machines run with little free disk (one had 5%, 15 GiB): the cluster is
# a throwaway, so the monitor stops only when the disk is all but full.
mon_data_avail_crit = 1
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
mon_max_pg_per_osd = 1000
mgr_initial_modules = iostat
log_file = $D/log/\$name.log
pid_file = $D/run/\$name.pid
run_dir = $D/run
admin_socket = $D/run/\$name.asok
crash_dir = $D/crash
ms_bind_ipv6 = false

[mon]
mon_data = $D/data/\$name
mon_memory_target = 268435456

[mgr]
mgr_data = $D/data/\$name

[osd]
osd_data = $D/data/\$name
osd_objectstore = bluestore
bluestore_block_size = 8589934592
bluestore_block_create = true
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 67108864
osd_op_num_shards = 2

[mds]
mds_data = $D/data/\$name
mds_cache_memory_limit = 134217728
mds_reconnect_timeout = 5

[client]
admin_socket = $D/run/\$name.\$pid.asok
log_file = $D/log/\$name.\$pid.log
EOF
}

wait_until() { # wait_until <what> <tries of 0.5 s> <python predicate over `ceph <cmd> -f json`> <cmd...>
  local what=$1 tries=$2 pred=$3
  shift 3
  for _ in $(seq "$tries"); do
    if ceph_ "$@" -f json 2>/dev/null | $PY -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($pred) else 1)"; then
      return 0
    fi
    sleep 0.5
  done
  echo "timed out waiting for $what" >&2
  ceph_ -s >&2 || true
  return 1
}

start() {
  install_packages
  if [ -d "$D" ]; then
    stop >/dev/null
    rm -rf "$D"
  fi
  mkdir -p "$D/data" "$D/run" "$D/log" "$D/crash"
  chmod 0700 "$D"
  local t0 fsid
  t0=$(now)
  fsid=$(uuidgen)
  write_conf "$fsid"

  ceph-authtool --create-keyring "$ADMIN_KR" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool --create-keyring "$D/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$D/mon.keyring" --import-keyring "$ADMIN_KR" >/dev/null
  monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' "$D/monmap" >/dev/null
  mkdir -p "$D/data/mon.a"
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$D/monmap" --keyring "$D/mon.keyring"
  rm -f "$D/mon.keyring"
  ceph-mon -c "$CONF" -i a

  mkdir -p "$D/data/mgr.x"
  ceph_ auth get-or-create mgr.x mon 'allow profile mgr' mds 'allow *' osd 'allow *' -o "$D/data/mgr.x/keyring"
  # In the foreground (as systemd runs it) with its output in a file: daemonized, its
  # Python modules have no usable stderr and `fs subvolume authorize` fails with EBADF.
  setsid ceph-mgr -c "$CONF" -i x -f >>"$D/log/mgr.x.stdio" 2>&1 </dev/null &
  echo $! >"$D/run/mgr.x.pid"

  local osd_uuid osd_secret
  osd_uuid=$(uuidgen)
  osd_secret=$(ceph-authtool --gen-print-key)
  mkdir -p "$D/data/osd.0"
  (umask 077 && printf '{"cephx_secret": "%s"}' "$osd_secret" >"$D/osd-new.json")
  ceph_ osd new "$osd_uuid" 0 -i "$D/osd-new.json" >/dev/null
  rm -f "$D/osd-new.json"
  ceph-osd -c "$CONF" -i 0 --mkfs --key "$osd_secret" --osd-uuid "$osd_uuid" >"$D/log/osd-mkfs.out" 2>&1
  (umask 077 && printf '[osd.0]\n\tkey = %s\n' "$osd_secret" >"$D/data/osd.0/keyring")
  ceph-osd -c "$CONF" -i 0

  mkdir -p "$D/data/mds.a"
  ceph_ auth get-or-create mds.a mon 'allow profile mds' osd 'allow rw tag cephfs *=*' mds 'allow' \
    mgr 'allow profile mds' -o "$D/data/mds.a/keyring"
  ceph-mds -c "$CONF" -i a

  # Pin every HTTP mgr module to loopback before anything could enable one.
  local m
  for m in dashboard restful prometheus; do
    ceph_ config set mgr "mgr/$m/server_addr" 127.0.0.1 --force
  done

  wait_until "an active mgr" 120 'd.get("available")' mgr dump
  wait_until "the OSD" 120 'd.get("num_up_osds", 0) >= 1' osd stat
  ceph_ fs volume create cephfs >/dev/null 2>&1
  ceph_ fs set cephfs standby_count_wanted 0
  wait_until "HEALTH_OK, clean PGs and an active MDS" 240 '
d["health"]["status"] == "HEALTH_OK"
and d["pgmap"].get("num_pgs", 0) > 0
and sum(s["count"] for s in d["pgmap"].get("pgs_by_state", []) if s["state_name"] == "active+clean") == d["pgmap"]["num_pgs"]
and any(x.get("status") == "up:active" for x in d.get("fsmap", {}).get("by_rank", []))' status
  ceph_ fs subvolumegroup create cephfs csi

  (umask 077 && ceph_ auth get-key client.admin >"$D/admin.key")
  cat >"$D/cluster-config.json" <<EOF
[{"clusterID": "real",
  "monitors": ["127.0.0.1:6789"],
  "cephFS": {"subvolumeGroup": "csi"},
  "admin": {"transport": "cli", "conf": "$CONF"},
  "controllerCredentials": {"userID": "admin", "keyFile": "$D/admin.key"}}]
EOF
  echo "TRAINRIDE_REAL_CEPH=$D" >"$D/env"
  echo "ceph cluster ready in $(since "$t0") s under $D"
}

status() {
  if [ -f "$D/run/mon.a.pid" ] && kill -0 "$(cat "$D/run/mon.a.pid")" 2>/dev/null; then
    timeout 20 ceph -c "$CONF" -k "$ADMIN_KR" -s
  else
    echo "no cluster running under $D"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status   (cluster under \$TRAINRIDE_CEPH_DIR, default /tmp/trainride-ceph)" >&2
    exit 2
    ;;
esac
