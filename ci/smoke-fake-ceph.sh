#!/usr/bin/env bash
# Starts the fake-ceph binary as a user would, sends commands with curl, and stops it.
# Checks what a newcomer sees: the URL on the first line, the keyring, Ceph's answers.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p fake-ceph
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

./target/debug/fake-ceph --listen 127.0.0.1:0 --keyring-out "$work/keyring" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
  [ -s "$work/out" ] && break
  sleep 0.05
done
url=$(head -n1 "$work/out")
key=$(awk '/key =/ {print $3}' "$work/keyring")

cmd() { curl -sf -u "client.admin:$key" -d "$1" "$url/request${2:-}"; }
expect() { # expect <json command> <substring of the reply> [?target=mgr]
  local out
  out=$(cmd "$1" "${3:-}")
  if [[ "$out" != *"$2"* ]]; then
    echo "FAIL: $1 -> $out (wanted $2)" >&2
    exit 1
  fi
}

expect '{"prefix":"fs subvolumegroup create","vol_name":"cephfs","group_name":"csi"}' '"ret":0'
expect '{"prefix":"fs subvolume create","vol_name":"cephfs","group_name":"csi","sub_name":"smoke","size":1048576}' '"ret":0'
expect '{"prefix":"fs subvolume getpath","vol_name":"cephfs","group_name":"csi","sub_name":"smoke"}' '/volumes/csi/smoke/'
expect '{"prefix":"fs subvolume info","vol_name":"cephfs","group_name":"csi","sub_name":"smoke"}' 'bytes_quota'
expect '{"prefix":"fs subvolume rm","vol_name":"cephfs","group_name":"csi","sub_name":"nope"}' '"ret":-2'
expect '{"prefix":"fs frobnicate"}' 'command not known'
expect '{"prefix":"fs frobnicate"}' "No handler found for 'fs frobnicate'" '?target=mgr'
status=$(curl -s -o /dev/null -w '%{http_code}' -d '{"prefix":"fs ls"}' "$url/request")
[ "$status" = 401 ] || { echo "FAIL: unauthenticated request got $status" >&2; exit 1; }
if grep -q "$key" "$work/err"; then
  echo "FAIL: the admin key appears in the log" >&2
  exit 1
fi
kill -TERM "$pid"
wait "$pid"
echo "fake-ceph smoke: ok ($url)"
