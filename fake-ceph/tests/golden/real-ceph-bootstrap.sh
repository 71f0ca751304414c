#!/bin/bash
# One-node Ceph Pacific cluster under /tmp/realceph (loopback only).
# Usage: bootstrap.sh [--wipe]     (never touches /etc/ceph)
set -euo pipefail
D=/tmp/realceph
CONF=$D/ceph.conf
ADMIN_KR=$D/ceph.client.admin.keyring
C="ceph -c $CONF -k $ADMIN_KR"

if [ "${1:-}" = "--wipe" ]; then
  [ -x $D/stop.sh ] && $D/stop.sh --umount || true
  rm -rf $D/data $D/run $D/log $D/crash $D/*.keyring $D/monmap $D/ceph.conf
fi
if [ -d $D/data/mon.a ]; then echo "cluster already exists in $D (use --wipe)"; exit 1; fi
mkdir -p $D/data $D/run $D/log $D/crash
FSID=$(uuidgen)
t0=$(date +%s.%N)

cat > $CONF <<EOF
[global]
fsid = $FSID
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

[client.admin]
keyring = $ADMIN_KR

[client]
admin_socket = $D/run/\$name.\$pid.asok
pid_file = $D/run/\$name.\$pid.pid
log_file = $D/log/\$name.\$pid.log
EOF

# keys + monmap
ceph-authtool --create-keyring $ADMIN_KR --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool --create-keyring $D/mon.keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool $D/mon.keyring --import-keyring $ADMIN_KR >/dev/null
monmaptool --create --fsid $FSID --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' $D/monmap >/dev/null
mkdir -p $D/data/mon.a
ceph-mon -c $CONF -i a --mkfs --monmap $D/monmap --keyring $D/mon.keyring
ceph-mon -c $CONF -i a
echo "mon up after $(echo "$(date +%s.%N) - $t0" | bc) s"

# mgr
mkdir -p $D/data/mgr.x
$C auth get-or-create mgr.x mon 'allow profile mgr' mds 'allow *' osd 'allow *' -o $D/data/mgr.x/keyring
# Run the mgr in the foreground (as systemd does) with stdout/stderr going to a file:
# daemonized, its Python modules have no usable stderr and `fs subvolume authorize`
# fails with "OSError: [Errno 9] Bad file descriptor" (it writes to sys.stderr).
setsid ceph-mgr -c $CONF -i x -f >> $D/log/mgr.x.stdio 2>&1 < /dev/null &
echo $! > $D/run/mgr.x.pid

# osd (vstart style)
OSD_UUID=$(uuidgen)
OSD_SECRET=$(ceph-authtool --gen-print-key)
mkdir -p $D/data/osd.0
echo "{\"cephx_secret\": \"$OSD_SECRET\"}" > $D/osd-new.json
$C osd new $OSD_UUID 0 -i $D/osd-new.json >/dev/null
rm -f $D/osd-new.json
ceph-osd -c $CONF -i 0 --mkfs --key $OSD_SECRET --osd-uuid $OSD_UUID 2>&1 | grep -v -e '^$' | tail -2 || true
cat > $D/data/osd.0/keyring <<EOF
[osd.0]
	key = $OSD_SECRET
EOF
ceph-osd -c $CONF -i 0
echo "osd started after $(echo "$(date +%s.%N) - $t0" | bc) s"

# mds
mkdir -p $D/data/mds.a
$C auth get-or-create mds.a mon 'allow profile mds' osd 'allow rw tag cephfs *=*' mds 'allow' mgr 'allow profile mds' -o $D/data/mds.a/keyring
ceph-mds -c $CONF -i a

# pin HTTP mgr modules to loopback before anything enables one
for m in dashboard restful prometheus; do
  $C config set mgr mgr/$m/server_addr 127.0.0.1 --force
done
$C config set mgr mgr/dashboard/ssl false --force
$C config set mgr mgr/dashboard/server_port 8080 --force

# wait for an active mgr with the volumes module
for i in $(seq 1 120); do
  if $C mgr dump -f json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("available") else 1)'; then break; fi
  sleep 0.5
done
for i in $(seq 1 120); do
  if $C osd stat -f json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d.get("num_up_osds",0)>=1 else 1)'; then break; fi
  sleep 0.5
done
$C fs volume create cephfs
$C fs set cephfs standby_count_wanted 0

# wait: HEALTH_OK, all PGs active+clean, an MDS up:active
wait_ready() {
  for i in $(seq 1 240); do
    if $C status -f json 2>/dev/null | /usr/bin/python3 -c '
import json,sys
d=json.load(sys.stdin)
ok = d["health"]["status"]=="HEALTH_OK"
pg = d["pgmap"]; n = pg.get("num_pgs",0)
clean = sum(s["count"] for s in pg.get("pgs_by_state",[]) if s["state_name"]=="active+clean")
mds = any(x.get("status")=="up:active" for x in d.get("fsmap",{}).get("by_rank",[]))
sys.exit(0 if ok and n>0 and clean==n and mds else 1)'; then return 0; fi
    sleep 0.5
  done
  echo "cluster not ready in time"; $C status; return 1
}
wait_ready
$C fs subvolumegroup create cephfs csi
echo "ready after $(echo "$(date +%s.%N) - $t0" | bc) s"
$C -s
