#!/usr/bin/env python3
"""What a Ceph (fake or real) and a Manila hold, as a sorted list of lines, and what a
later state holds that an earlier one did not.

    backend_state.py take --fake-ceph URL --keyring FILE [--manila-auth URL] > state.json
    backend_state.py take --ceph-conf CONF --keyring FILE > state.json
    backend_state.py diff BEFORE AFTER      # exit 1 if AFTER holds anything new

A state lists subvolumes (every group and _nogroup), their snapshots, cephx entities, the
objects of the driver's RADOS namespace (`csi`) in each file system's metadata pool (the
journal's per-UUID records) and the entries of its journal directories (the directory
objects themselves stay, empty, as ceph-csi's do), MDS sessions (by entity; the mgr's own are
left out), and with --manila-auth the demo project's shares and access rules. The node
registry (`csi.nodes.*`) is kept on purpose: `diff` reports it apart and does not fail
on it. Keys and passwords never reach the output. Standard library only.
"""

import argparse
import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request

NAMESPACE = "csi"
KEPT = ("object csi.nodes.", "omap csi.nodes.")


class FakeCeph:
    """fake-ceph's HTTP wire API as client.admin."""

    def __init__(self, url, key):
        self.url = url.rstrip("/")
        token = base64.b64encode(f"client.admin:{key}".encode()).decode()
        self.auth = {"Authorization": f"Basic {token}"}

    def _post(self, path, cmd):
        req = urllib.request.Request(
            self.url + path, data=json.dumps(cmd).encode(), headers=self.auth
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def cmd(self, cmd, mgr=False):
        cmd = dict(cmd, format="json")
        a = self._post("/request" + ("?target=mgr" if mgr else ""), cmd)
        if a["ret"] != 0:
            raise RuntimeError(f"{cmd['prefix']}: {a['ret']} {a['outs']}")
        return json.loads(a["outb"]) if a["outb"].strip() else None

    def tell(self, fs, cmd):
        a = self._post(f"/tell/{fs}:0", cmd)
        if isinstance(a, dict) and "ret" in a:
            if a["ret"] != 0:
                raise RuntimeError(f"tell {cmd['prefix']}: {a['ret']} {a.get('outs')}")
            return json.loads(a["outb"]) if a["outb"].strip() else None
        return a

    def rados_ls(self, pool):
        out = self.cmd({"prefix": "rados ls", "pool": pool, "namespace": NAMESPACE})
        return [o if isinstance(o, str) else o.get("name", "") for o in (out or [])]

    def omap_keys(self, pool, obj):
        try:
            out = self.cmd(
                {"prefix": "rados omap list", "pool": pool, "namespace": NAMESPACE,
                 "object": obj, "start_after": "", "filter_prefix": "", "max_return": 100000}
            )
        except RuntimeError as e:
            if ": -2 " in str(e):
                return []
            raise
        return sorted((out or {}).get("vals", {}).keys())


class RealCeph:
    """A real cluster through the `ceph` and `rados` commands."""

    def __init__(self, conf, keyring):
        self.base = ["-c", conf, "-k", keyring]

    def _run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[3:])}: {r.returncode} {r.stderr.strip()}")
        return r.stdout

    def cmd(self, cmd, mgr=False):
        argv = ["ceph", *self.base, *cmd["prefix"].split()]
        for k, v in cmd.items():
            if k != "prefix":
                argv.append(f"--{k}={v}")
        out = self._run(argv + ["--format=json"])
        return json.loads(out) if out.strip() else None

    def tell(self, fs, cmd):
        out = self._run(["ceph", *self.base, "tell", f"mds.{fs}:0", *cmd["prefix"].split(),
                         "--format=json"])
        return json.loads(out) if out.strip() else None

    def rados_ls(self, pool):
        out = self._run(["rados", *self.base, "-p", pool, "--namespace", NAMESPACE, "ls"])
        return out.split()

    def omap_keys(self, pool, obj):
        r = subprocess.run(
            ["rados", *self.base, "-p", pool, "--namespace", NAMESPACE, "listomapkeys", obj],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            if "No such file" in r.stderr:
                return []
            raise RuntimeError(f"listomapkeys {obj}: {r.stderr.strip()}")
        return sorted(r.stdout.split())


def ceph_state(c):
    lines = []
    # The mgr's volumes module keeps sessions of its own (and reopens them when idle
    # ones close): they are the cluster's, never the driver's.
    try:
        mgrs = {(c.cmd({"prefix": "mgr dump"}) or {}).get("active_name")}
    except RuntimeError:
        mgrs = set()
    for fs in c.cmd({"prefix": "fs ls"}) or []:
        name, pool = fs["name"], fs["metadata_pool"]
        groups = [g["name"] for g in c.cmd({"prefix": "fs subvolumegroup ls", "vol_name": name}, True) or []]
        for g in [*groups, None]:
            args = {"prefix": "fs subvolume ls", "vol_name": name}
            if g:
                args["group_name"] = g
            for sv in c.cmd(args, True) or []:
                where = f"{name}/{g or '_nogroup'}/{sv['name']}"
                lines.append(f"subvolume {where}")
                snaps = dict(args, prefix="fs subvolume snapshot ls", sub_name=sv["name"])
                for s in c.cmd(snaps, True) or []:
                    lines.append(f"snapshot {where}@{s['name']}")
        for obj in c.rados_ls(pool):
            if obj.startswith(("csi.volumes.", "csi.snaps.", "csi.clones.", "csi.nodes.")):
                # A journal directory (kept, as ceph-csi keeps it): its entries count.
                lines += [f"omap {obj} {k}" for k in c.omap_keys(pool, obj)]
            else:
                lines.append(f"object {obj} in {pool}")
        for s in c.tell(name, {"prefix": "session ls"}) or []:
            entity = (s.get("client_metadata") or {}).get("entity_id", "?")
            if entity not in mgrs:
                lines.append(f"session {s.get('id')} client.{entity}")
    auth = c.cmd({"prefix": "auth ls"}) or {}
    lines += [f"auth {e['entity']}" for e in auth.get("auth_dump", [])]
    return lines


def manila_state(auth_url, user, password, project, domain):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    req = urllib.request.Request(auth_url.rstrip("/") + "/auth/tokens",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        token = r.headers["X-Subject-Token"]
        catalog = json.load(r)["token"]["catalog"]
    url = next(e["url"] for s in catalog if s["type"] == "sharev2"
               for e in s["endpoints"] if e["interface"] == "public")
    headers = {"X-Auth-Token": token, "X-OpenStack-Manila-API-Version": "2.45"}

    def get(path):
        with urllib.request.urlopen(urllib.request.Request(url + path, headers=headers),
                                    timeout=30) as r:
            return json.load(r)

    lines = []
    for s in get("/shares/detail")["shares"]:
        lines.append(f"share {s['id']} {s.get('name')} {s['status']}")
        for a in get(f"/share-access-rules?share_id={s['id']}")["access_list"]:
            lines.append(f"access {s['id']} {a['access_type']}:{a['access_to']} {a['state']}")
    return lines


def key_of(keyring):
    with open(keyring) as f:
        for line in f:
            k, _, v = line.partition("=")
            if k.strip() == "key":
                return v.strip()
    with open(keyring) as f:
        return f.read().strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    t = sub.add_parser("take")
    t.add_argument("--fake-ceph")
    t.add_argument("--ceph-conf")
    t.add_argument("--keyring", required=True)
    t.add_argument("--manila-auth")
    t.add_argument("--os-user", default="demo")
    t.add_argument("--os-password", default="demo")
    t.add_argument("--os-project", default="demo")
    t.add_argument("--os-domain", default="Default")
    d = sub.add_parser("diff")
    d.add_argument("before")
    d.add_argument("after")
    a = p.parse_args()
    if a.verb == "take":
        if a.fake_ceph:
            c = FakeCeph(a.fake_ceph, key_of(a.keyring))
        elif a.ceph_conf:
            c = RealCeph(a.ceph_conf, a.keyring)
        else:
            p.error("--fake-ceph or --ceph-conf")
        lines = ceph_state(c)
        if a.manila_auth:
            lines += manila_state(a.manila_auth, a.os_user, a.os_password, a.os_project,
                                  a.os_domain)
        json.dump(sorted(set(lines)), sys.stdout, indent=0)
        print()
        return 0
    with open(a.before) as f:
        before = set(json.load(f))
    with open(a.after) as f:
        after = set(json.load(f))
    new = sorted(after - before)
    kept = [x for x in new if x.startswith(KEPT)]
    left = [x for x in new if not x.startswith(KEPT)]
    for x in kept:
        print(f"kept (node registry): {x}")
    for x in left:
        print(f"LEFT BEHIND: {x}")
    if not left:
        print(f"nothing left behind ({len(after)} items, {len(before)} before)")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
