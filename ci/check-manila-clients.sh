#!/usr/bin/env bash
# Runs real OpenStack clients, unmodified, against fake-manila (on fake-ceph): the legacy
# `manila` CLI (python-manilaclient 5.7.1), `openstack share` (python-openstackclient +
# the manilaclient 6.3.0 plugin) and openstacksdk. First version discovery: plain GETs
# of Keystone's and Manila's roots without a version header, keystoneauth's discovery of
# both, and openstacksdk's endpoint and version data found through the catalog. Then each
# client creates a share and waits for it, shows and lists it, grants cephx access and
# reads the key, lists export locations, extends and shrinks, snapshots and deletes the
# snapshot, denies access, deletes the share and waits until it is gone. Needs python3
# (with venv) and PyPI; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

# Pinned client versions (the reference's recorded ones).
LEGACY_PKGS=(python-manilaclient==5.7.1)
OSC_PKGS=(python-openstackclient==10.5.0 python-manilaclient==6.3.0 openstacksdk==4.22.0)

cargo build --quiet -p fake-ceph -p fake-manila
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Line <n> of a process's stdout, once it is there.
nth_line() { # nth_line <file> <n>
  for _ in $(seq 200); do
    [ "$(wc -l <"$1")" -ge "$2" ] && { sed -n "$2p" "$1"; return; }
    sleep 0.05
  done
  fail "no line $2 in $1"
}

./target/debug/fake-ceph --listen 127.0.0.1:0 --keyring-out "$work/keyring" --clone-time-ms 200 \
  >"$work/ceph.out" 2>"$work/ceph.err" &
pids+=($!)
ceph_url=$(nth_line "$work/ceph.out" 1)
RUST_LOG=debug ./target/debug/fake-manila --listen 127.0.0.1:0 --ceph-url "$ceph_url" --ceph-keyring "$work/keyring" \
  --delay-ms 200 >"$work/manila.out" 2>"$work/manila.err" &
pids+=($!)
# fake-manila prints Keystone's auth URL, then Manila's endpoint (two ports).
auth_url=$(nth_line "$work/manila.out" 1)
manila_url=$(nth_line "$work/manila.out" 2)
echo "fake-ceph $ceph_url, Keystone $auth_url, Manila $manila_url"

# The clients, each set in its own venv (the legacy CLI and the 6.x plugin conflict).
venv() { # venv <dir> <packages...>
  local dir=$1
  shift
  if ! python3 -m venv "$dir" 2>/dev/null; then
    # Debian ships venv separately.
    command -v apt-get >/dev/null || fail "python3 -m venv does not work"
    apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$dir"
  fi
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
}
venv "$work/legacy" "${LEGACY_PKGS[@]}" &
legacy_pid=$!
venv "$work/osc" "${OSC_PKGS[@]}"
wait "$legacy_pid"
echo "clients installed ($((SECONDS - started)) s)"

export OS_AUTH_URL="$auth_url" OS_USERNAME=demo OS_PASSWORD=demo OS_PROJECT_NAME=demo \
  OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_IDENTITY_API_VERSION=3 \
  OS_REGION_NAME=RegionOne
py() { "$work/osc/bin/python" -c "$@"; }
# (Outputs are read whole before grep: `grep -q` closing a pipe early breaks the client.)
expect() { # expect <regex> <what> <command...>
  local re=$1 what=$2 out
  shift 2
  out=$("$@") || fail "$what: the command failed"
  grep -qE -- "$re" <<<"$out" || fail "$what: no match for $re in: $out"
}
# Polls a command until its output matches (grep -E) or not (with !); 60 s at most.
until_out() { # until_out [!] <regex> <command...>
  local neg=0
  if [ "$1" = "!" ]; then neg=1; shift; fi
  local re=$1
  shift
  local out
  for _ in $(seq 120); do
    out=$("$@" 2>/dev/null) || true
    if grep -qE -- "$re" <<<"$out"; then
      [ $neg = 0 ] && return 0
    else
      [ $neg = 1 ] && return 0
    fi
    sleep 0.5
  done
  fail "waiting for '$re' (negated: $neg) from: $*"
}

# ---------------------------------------------------------------------------------
# 0. Version discovery. Keystone and Manila are separate endpoints: each root answers,
# without any header, with its own service's versions; clients find Manila's endpoint in
# the catalog and discover its microversions there.
cat >"$work/discovery.py" <<'EOF'
import os, sys
import openstack
import requests
from keystoneauth1 import discover
from keystoneauth1 import session as ks_session

auth_url = os.environ["OS_AUTH_URL"]
manila = os.environ["MANILA_URL"]
assert auth_url.endswith("/v3"), auth_url
keystone = auth_url[: -len("/v3")]
assert keystone != manila, "one endpoint for both"

def check(cond, what):
    if not cond:
        sys.exit(f"discovery: {what}")

# Plain GETs, no version header: Manila's root is Manila's version list (300, as
# manila/api/versions.py answers), Keystone's root is Keystone's.
r = requests.get(manila + "/")
check(r.status_code == 300, f"GET {manila}/ answered {r.status_code}: {r.text}")
check("x-openstack-manila-api-version" not in r.headers, "the root echoed a version")
versions = r.json()["versions"]
current = [v for v in versions if v["status"] == "CURRENT"]
check([v["id"] for v in current] == ["v2.0"], f"CURRENT versions: {versions}")
v2 = current[0]
check((v2["min_version"], v2["version"]) == ("2.0", "2.99"), f"v2.0 range: {v2}")
check({"rel": "self", "href": manila + "/v2/"} in v2["links"], f"v2.0 links: {v2}")
check([v["id"] for v in versions] == ["v2.0"], f"current Manila lists v2.0 alone: {versions}")
r = requests.get(keystone + "/")
check(r.status_code == 300, f"GET {keystone}/ answered {r.status_code}")
check(r.json()["versions"]["values"][0]["id"].startswith("v3."), f"Keystone's root: {r.text}")
# Manila's version header does not turn Keystone's root into Manila's.
r = requests.get(keystone + "/", headers={"X-OpenStack-Manila-API-Version": "2.91"})
check("values" in r.json()["versions"], f"Keystone's root with Manila's header: {r.text}")

# keystoneauth's own discovery of both roots, without a token.
sess = ks_session.Session()
found = {
    v["version"]: v
    for v in discover.get_discovery(sess, manila, authenticated=False).version_data()
}
check(set(found) == {(2, 0)}, f"keystoneauth found {found}")
v2 = found[(2, 0)]
check(v2["url"] == manila + "/v2/", f"v2 URL {v2}")
check((v2["min_microversion"], v2["max_microversion"]) == ((2, 0), (2, 99)), f"{v2}")
check(v2["raw_status"] == "CURRENT", f"{v2}")
ks = discover.get_discovery(sess, keystone, authenticated=False).version_data()
check([v["version"][0] for v in ks] == [3], f"Keystone's versions {ks}")

# openstacksdk: the catalog leads to Manila's endpoint, whose discovery gives the range;
# the version data of every major version comes from Manila's unversioned root.
sfs = openstack.connect().shared_file_system
ep = sfs.get_endpoint_data()
check(ep.catalog_url == manila + "/v2", f"catalog URL {ep.catalog_url}")
check(ep.url == manila + "/v2/", f"endpoint {ep.url}")
check(ep.api_version == (2, 0), f"api version {ep.api_version}")
check((ep.min_microversion, ep.max_microversion) == ((2, 0), (2, 99)), f"{ep}")
data = sfs.get_all_version_data()["RegionOne"]["public"]["shared-file-system"]
check(
    [(v["version"], v["raw_status"], v["url"]) for v in data]
    == [("2.0", "CURRENT", manila + "/v2/")],
    f"all version data {data}",
)
check(
    [(v["min_microversion"], v["max_microversion"]) for v in data if v["version"] == "2.0"]
    == [("2.0", "2.99")],
    f"all version data {data}",
)
EOF
MANILA_URL="$manila_url" "$work/osc/bin/python" "$work/discovery.py"
echo "version discovery: ok ($((SECONDS - started)) s)"

# ---------------------------------------------------------------------------------
# 1. The legacy `manila` CLI (it has no JSON output: read its tables).
manila() { "$work/legacy/bin/manila" "$@" 2> >(grep -v "is deprecated" >&2); }
prop() { # prop <property> < `manila show` table
  awk -F'|' -v k="$1" '{p=$2; gsub(/^ +| +$/, "", p)} p == k && !done {v=$3; gsub(/^ +| +$/, "", v); print v; done=1}'
}
manila create CEPHFS 1 --name cli-share --share-type cephfstype --wait >/dev/null
show=$(manila show cli-share)
[ "$(prop status <<<"$show")" = available ] || fail "manila show: status"
cli_id=$(prop id <<<"$show")
expect "cli-share +\| available" "manila list" manila list --columns name,status
manila access-allow cli-share cephx alice-cli --wait >/dev/null
expect "alice-cli +\| active +\| AQ[A-Za-z0-9+/]{36}==" "manila access-list" \
  manila access-list cli-share --columns access_to,state,access_key
expect "127\.0\.0\.1:6789:/volumes/_nogroup/$cli_id/[0-9a-f-]{36}" "manila share-export-location-list" \
  manila share-export-location-list cli-share --columns path
manila extend cli-share 2 --wait >/dev/null
[ "$(manila show cli-share | prop size)" = 2 ] || fail "manila extend"
manila shrink cli-share 1 --wait >/dev/null
[ "$(manila show cli-share | prop size)" = 1 ] || fail "manila shrink"
manila snapshot-create cli-share --name cli-snap --wait >/dev/null
[ "$(manila snapshot-show cli-snap | prop status)" = available ] || fail "manila snapshot-show"
# 5.7.1's `snapshot-delete --wait` passes the name where it wants an object (a client
# bug), so poll instead.
manila snapshot-delete cli-snap
until_out ! cli-snap manila snapshot-list
rule=$(manila access-list cli-share --columns id,access_to | awk '/alice-cli/ {print $2}')
manila access-deny cli-share "$rule"
until_out ! alice-cli manila access-list cli-share
manila delete cli-share --wait >/dev/null
[[ "$(manila list)" != *cli-share* ]] || fail "manila delete"
echo "manila CLI: ok ($((SECONDS - started)) s)"

# ---------------------------------------------------------------------------------
# 2. `openstack share` (OSC + the manilaclient 6.3.0 plugin), JSON output.
openstack() { "$work/osc/bin/openstack" "$@"; }
jget() { py "import json,sys; v=json.load(sys.stdin); print($1)"; }
openstack share create CEPHFS 1 --name osc-share --share-type cephfstype --wait -f json >"$work/osc-create"
[ "$(jget 'v["status"]' <"$work/osc-create")" = available ] || fail "openstack share create"
osc_id=$(jget 'v["id"]' <"$work/osc-create")
openstack share show osc-share -f json >"$work/osc-show"
[ "$(jget 'v["status"]' <"$work/osc-show")" = available ] || fail "openstack share show"
[[ "$(openstack share list -f value -c Name)" == *osc-share* ]] || fail "openstack share list"
openstack share access create osc-share cephx bob-osc --wait -f json >"$work/osc-access"
expect '^AQ[A-Za-z0-9+/]{36}==$' "openstack share access create" jget 'v["access_key"]' <"$work/osc-access"
openstack share access list osc-share -f json >"$work/osc-list"
expect "^\('bob-osc', 'active', 'AQ'\)" "openstack share access list" \
  jget '(v[0]["Access To"], v[0]["State"], v[0]["Access Key"][:2])' <"$work/osc-list"
openstack share export location list osc-share -f json >"$work/osc-els"
expect "^127\.0\.0\.1:6789:/volumes/_nogroup/$osc_id/" "openstack share export location list" \
  jget 'v[0]["Path"]' <"$work/osc-els"
openstack share resize osc-share 2 --wait
[ "$(openstack share show osc-share -f value -c size)" = 2 ] || fail "openstack share resize (extend)"
openstack share resize osc-share 1 --wait
[ "$(openstack share show osc-share -f value -c size)" = 1 ] || fail "openstack share resize (shrink)"
openstack share quota show demo -f json >"$work/osc-quota"
[ "$(jget 'v["shares"]' <"$work/osc-quota")" = 50 ] || fail "openstack share quota show"
openstack share snapshot create osc-share --name osc-snap --wait -f json >"$work/osc-snap"
[ "$(jget 'v["status"]' <"$work/osc-snap")" = available ] || fail "openstack share snapshot create"
[ "$(openstack share snapshot show osc-snap -f value -c status)" = available ] || fail "openstack share snapshot show"
openstack share snapshot delete osc-snap --wait
[[ "$(openstack share snapshot list -f value)" != *osc-snap* ]] || fail "openstack share snapshot delete"
access_id=$(jget 'v["id"]' <"$work/osc-access")
openstack share access delete osc-share "$access_id" --wait
[[ "$(openstack share access list osc-share -f value)" != *bob-osc* ]] || fail "openstack share access delete"
openstack share delete osc-share --wait
[[ "$(openstack share list -f value)" != *osc-share* ]] || fail "openstack share delete"
echo "openstack share: ok ($((SECONDS - started)) s)"

# ---------------------------------------------------------------------------------
# 3. openstacksdk. Without a default microversion the SDK sends `extend` at 2.0, which
# Manila refuses (404); deployments set one, and so does this check after proving it.
cat >"$work/sdk.py" <<'EOF'
import os, sys, time
import openstack
from openstack import exceptions

def wait(pred, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    sys.exit(f"sdk: timed out waiting for {what}")

sfs = openstack.connect().shared_file_system
share = sfs.create_share(name="sdk-share", size=1, share_proto="CEPHFS", share_type="cephfstype")
share = sfs.wait_for_status(share, status="available", failures=["error"], interval=1, wait=120)
try:
    sfs.resize_share(share.id, 2)
    sys.exit("sdk: extend at 2.0 should be 404")
except exceptions.NotFoundException:
    pass

os.environ["OS_SHARED_FILE_SYSTEM_API_VERSION"] = "2.82"
sfs = openstack.connect().shared_file_system
share = sfs.get_share(share.id)
assert share.status == "available", share.status
assert "sdk-share" in [s.name for s in sfs.shares()], "list"
assert sfs.find_share("sdk-share").id == share.id, "find"
rule = sfs.create_access_rule(share.id, access_type="cephx", access_to="carol-sdk", access_level="rw")

def keyed():
    for r in sfs.access_rules(share):
        if r.id == rule.id and r.state == "active" and r.access_key:
            return r

r = wait(keyed, "the access key")
assert r.access_key.startswith("AQ") and len(r.access_key) == 40, "key shape"
els = list(sfs.export_locations(share.id))
assert len(els) == 1 and f":/volumes/_nogroup/{share.id}/" in els[0].path, "export location"
sfs.resize_share(share.id, 3)
wait(lambda: (s := sfs.get_share(share.id)).status == "available" and s.size == 3, "extend")
sfs.resize_share(share.id, 2)
wait(lambda: (s := sfs.get_share(share.id)).status == "available" and s.size == 2, "shrink")
snap = sfs.create_share_snapshot(share_id=share.id, name="sdk-snap")
snap = sfs.wait_for_status(snap, status="available", failures=["error"], interval=1, wait=120)
sfs.delete_share_snapshot(snap)
sfs.wait_for_delete(snap, interval=1, wait=120)
sfs.delete_access_rule(rule.id, share.id)
wait(lambda: not list(sfs.access_rules(share)), "deny")
sfs.delete_share(share)
sfs.wait_for_delete(share, interval=1, wait=120)
assert "sdk-share" not in [s.name for s in sfs.shares()], "delete"
EOF
"$work/osc/bin/python" "$work/sdk.py"
echo "openstacksdk: ok ($((SECONDS - started)) s)"

# ---------------------------------------------------------------------------------
# Secrets stay out of the services' logs.
for secret in "$(jget 'v["access_key"]' <"$work/osc-access")" "$(awk '/key =/ {print $3}' "$work/keyring")"; do
  if grep -qF -- "$secret" "$work/manila.err" "$work/ceph.err"; then
    fail "a key appears in a log"
  fi
done
grep -q "manila request" "$work/manila.err" || fail "fake-manila logged no requests"
echo "manila clients: ok in $((SECONDS - started)) s"
