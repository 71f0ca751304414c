#!/bin/bash
# Stop the /tmp/realceph cluster. First every ceph-fuse mount is unmounted (a mount left
# behind hangs anything that touches it once the cluster is gone): plain umount with a
# 10 s deadline, else lazy umount and SIGTERM/SIGKILL to that mount's ceph-fuse PID.
# Then the daemons, mgr before mds (so the volumes module's libcephfs sessions close and
# the next MDS start does not sit in up:reconnect), then osd, then mon.
# Only PIDs from this cluster's pid files / ceph-fuse processes for these mounts are killed.
D=/tmp/realceph
fuse_pids_for() {  # ceph-fuse processes whose argv contains mountpoint $1
  for p in /proc/[0-9]*; do
    [ -r $p/cmdline ] || continue
    if tr '\0' '\n' < $p/cmdline 2>/dev/null | head -1 | grep -q 'ceph-fuse$' &&
       tr '\0' '\n' < $p/cmdline 2>/dev/null | grep -qx -- "$1"; then
      echo ${p#/proc/}
    fi
  done
}
for m in $(awk '$3=="fuse.ceph-fuse"{print $2}' /proc/mounts); do
  pids=$(fuse_pids_for "$m")
  if ! timeout 10 umount "$m" 2>/dev/null; then
    echo "umount $m failed or hung: lazy umount, stopping ceph-fuse $pids"
    umount -l "$m" 2>/dev/null || true
    for p in $pids; do kill -TERM $p 2>/dev/null; done
    sleep 2
    for p in $pids; do kill -0 $p 2>/dev/null && kill -KILL $p; done
  fi
done
stop_one() {
  local name=$1 pidf=$D/run/$1.pid
  [ -f $pidf ] || return 0
  local pid; pid=$(cat $pidf)
  if [ -n "$pid" ] && kill -0 $pid 2>/dev/null && grep -q ceph /proc/$pid/cmdline 2>/dev/null; then
    kill -TERM $pid
    for i in $(seq 1 60); do kill -0 $pid 2>/dev/null || break; sleep 0.5; done
    if kill -0 $pid 2>/dev/null; then echo "$name did not stop in 30 s, SIGKILL"; kill -KILL $pid; fi
  fi
  rm -f $pidf
}
for n in mgr.x mds.a osd.0 mon.a; do
  stop_one $n
done
echo stopped
