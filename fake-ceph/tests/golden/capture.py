#!/usr/bin/python3
"""Capture golden samples of what a REAL Ceph cluster answers to the mon/mgr/mds
commands (and RADOS omap ops, ceph-fuse mounts) that the fake Ceph server imitates.

Usage (Debian's /usr/bin/python3, which has the `rados` and `cephfs` bindings):

    /usr/bin/python3 capture.py /tmp/trainride-ceph/ceph.conf \
        /tmp/trainride-ceph/ceph.client.admin.keyring  real-pacific/

Expects a fresh one-node cluster with a CephFS volume `cephfs` (data pool
`cephfs.cephfs.data`, metadata pool `cephfs.cephfs.meta`), an MDS `a` and the
subvolume group `csi` (as ci/ceph-cluster.sh start leaves it). It writes one JSON file per
case, `NNN-<slug>.json`, plus `summary.md` and `versions.txt`, into the output dir.

Records keep raw values (fake tests compare shapes/keys/types, not values), except
that every cephx key (40 base64 chars, "AQ...==") is replaced by "AQ<redacted-key>==".
One failing case never stops the run. Mounts go under <conf dir>/mnt and are all
unmounted at the end.
"""
import base64
import concurrent.futures
import errno
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import rados

try:
    import cephfs
except ImportError:  # pragma: no cover
    cephfs = None

CONF, KEYRING, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
BASE = os.path.dirname(os.path.abspath(CONF))
MNT = os.path.join(BASE, "mnt")
V = "cephfs"
G = "csi"
META_POOL = "cephfs.cephfs.meta"
DATA_POOL = "cephfs.cephfs.data"
MIB = 1 << 20
GIB = 1 << 30
CMD_TIMEOUT = 90

KEY_RE = re.compile(r"AQ[A-Za-z0-9+/]{36}==")
REDACTED = "AQ<redacted-key>=="
SEEN_KEYS = {}  # key -> facts (kept in memory only; never written)

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if re.match(r"^\d{3}-.*\.json$", f):
        os.unlink(os.path.join(OUT, f))
os.makedirs(MNT, exist_ok=True)

ROWS = []  # (fname, target, brief, ret, outs, note, surprise)
SURPRISES = []
COUNTER = [0]
POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8)
MOUNTS = []  # mountpoints we mounted
TMPFILES = []


# ---------------------------------------------------------------- helpers
def note_key(k):
    if k in SEEN_KEYS:
        return
    facts = {"len": len(k), "prefix": k[:2], "suffix": k[-2:]}
    try:
        raw = base64.b64decode(k)
        facts["decoded_len"] = len(raw)
        facts["type"] = int.from_bytes(raw[0:2], "little")
        facts["secret_len"] = int.from_bytes(raw[10:12], "little")
    except Exception as e:  # noqa
        facts["decode_error"] = repr(e)
    SEEN_KEYS[k] = facts


def redact_text(s):
    if not isinstance(s, str):
        return s
    for k in KEY_RE.findall(s):
        note_key(k)
    return KEY_RE.sub(REDACTED, s)


def redact(obj):
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, list):
        return [redact(x) for x in obj]
    if isinstance(obj, dict):
        return {redact_text(k): redact(v) for k, v in obj.items()}
    return obj


def brief_of(cmd):
    if isinstance(cmd, dict):
        rest = {k: v for k, v in cmd.items() if k not in ("prefix", "format")}
        s = cmd.get("prefix", "?")
        if rest:
            s += " " + json.dumps(rest, ensure_ascii=False)
        if "format" in cmd:
            s += " [%s]" % cmd["format"]
        return s
    return str(cmd)


def save(slug, rec, brief, note="", expect=None):
    """Write one case file and a summary row. expect: None | int ret | 'nonzero'."""
    COUNTER[0] += 1
    fname = "%03d-%s.json" % (COUNTER[0], slug)
    if note:
        rec["note"] = note
    ret = rec.get("ret", rec.get("rc"))
    surprise = ""
    if expect is not None:
        if expect == "nonzero":
            bad = ret == 0
        else:
            bad = ret != expect
        if bad:
            surprise = "expected %s, got %s" % (expect, ret)
            rec["surprise"] = surprise
    rec = redact(rec)
    # outb_json duplicates outb; tests parse outb themselves.
    rec.pop("outb_json", None)
    with open(os.path.join(OUT, fname), "w") as f:
        json.dump(rec, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")
    outs = rec.get("outs")
    if outs is None:
        outs = rec.get("stderr", rec.get("exception", ""))
    if outs is None:
        outs = ""
    if isinstance(outs, dict):
        outs = json.dumps(outs)
    ROWS.append((fname, rec.get("target", "?"), redact_text(brief), ret, redact_text(str(outs)),
                 redact_text(note), surprise))
    if surprise:
        SURPRISES.append("%s: %s (%s)" % (fname, surprise, redact_text(brief)))
    print("%s ret=%s outs=%r%s" % (fname, ret, str(outs)[:100], "  !! " + surprise if surprise else ""),
          flush=True)
    return rec


def _raw_call(target, s, cl, spec):
    if target == "mon":
        return cl.mon_command(s, b"", timeout=CMD_TIMEOUT)
    if target == "mgr":
        return cl.mgr_command(s, b"", timeout=CMD_TIMEOUT)
    if target == "mds":
        return FS.mds_command(spec, s, b"")
    raise ValueError(target)


def call(target, cmd, raw=None, cl=None, spec="a", timeout=CMD_TIMEOUT):
    """Send one command, return a record dict (not yet saved)."""
    cl = cl or CL
    s = raw if raw is not None else json.dumps(cmd)
    rec = {"target": target}
    if target == "mds":
        rec["mds_spec"] = spec
    rec["cmd"] = cmd if raw is None else None
    if raw is not None:
        rec["raw_cmd"] = raw
    t0 = time.monotonic()
    fut = POOL.submit(_raw_call, target, s, cl, spec)
    try:
        ret, outb, outs = fut.result(timeout=timeout)
        rec["ret"] = ret
        rec["outs"] = outs
        try:
            rec["outb"] = outb.decode("utf-8")
        except UnicodeDecodeError:
            rec["outb"] = outb.decode("latin-1")
            rec["outb_note"] = "not utf-8, decoded as latin-1"
        try:
            if rec["outb"].strip():
                rec["outb_json"] = json.loads(rec["outb"])
        except ValueError:
            pass
    except concurrent.futures.TimeoutError:
        rec["ret"] = None
        rec["exception"] = "client-side timeout after %ss" % timeout
    except Exception as e:
        rec["ret"] = None
        rec["exception"] = {"type": type(e).__name__, "str": str(e),
                            "errno": getattr(e, "errno", None)}
    rec["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 2)
    return rec


def case(slug, target, cmd, note="", expect=None, raw=None, cl=None, spec="a", timeout=CMD_TIMEOUT):
    try:
        rec = call(target, cmd, raw=raw, cl=cl, spec=spec, timeout=timeout)
    except Exception:
        rec = {"target": target, "cmd": cmd, "ret": None, "exception": traceback.format_exc()}
    brief = brief_of(cmd) if raw is None else "raw %r" % raw
    if cl is not None and cl is not CL:
        brief = "(as %s) %s" % (CLNAMES.get(id(cl), "?"), brief)
        rec["as_entity"] = CLNAMES.get(id(cl), "?")
    return save(slug, rec, brief, note, expect)


def mon(slug, cmd, note="", expect=None, **kw):
    return case(slug, "mon", cmd, note, expect, **kw)


def mgr(slug, cmd, note="", expect=None, **kw):
    return case(slug, "mgr", cmd, note, expect, **kw)


def mds(slug, cmd, note="", expect=None, spec="a", **kw):
    return case(slug, "mds", cmd, note, expect, spec=spec, **kw)


def quiet(target, cmd, cl=None):
    """Helper call that is not recorded. Returns (ret, outb str, outs)."""
    r = call(target, cmd, cl=cl)
    return r.get("ret"), r.get("outb", ""), r.get("outs", r.get("exception"))


def sh(argv, timeout=60, input=None, env=None):
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, input=input, env=env)
        r = {"rc": p.returncode, "stdout": p.stdout.decode("utf-8", "replace"),
             "stderr": p.stderr.decode("utf-8", "replace")}
    except subprocess.TimeoutExpired as e:
        r = {"rc": None, "timeout": timeout,
             "stdout": (e.stdout or b"").decode("utf-8", "replace"),
             "stderr": (e.stderr or b"").decode("utf-8", "replace")}
    except Exception as e:
        r = {"rc": None, "stdout": "", "stderr": "", "exception": repr(e)}
    r["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 2)
    return r


def shell_case(slug, argv, note="", expect=None, timeout=60, target="shell", **kw):
    r = sh(argv, timeout=timeout, **kw)
    rec = {"target": target, "argv": argv}
    rec.update(r)
    return save(slug, rec, " ".join(argv), note, expect)


def py_case(slug, desc, fn, note="", expect=None, target="rados-py"):
    """Run fn(); record result or exception (with errno)."""
    rec = {"target": target, "op": desc}
    t0 = time.monotonic()
    try:
        res = fn()
        rec["ret"] = 0
        rec["result"] = jsonable(res)
    except Exception as e:
        en = getattr(e, "errno", None)
        rec["ret"] = -en if isinstance(en, int) and en > 0 else (en if en is not None else None)
        rec["exception"] = {"type": type(e).__name__, "module": type(e).__module__,
                            "str": str(e), "errno": en,
                            "errno_name": errno.errorcode.get(abs(en)) if isinstance(en, int) else None}
    rec["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 2)
    return save(slug, rec, desc, note, expect)


def jsonable(x):
    if isinstance(x, bytes):
        try:
            return {"bytes_utf8": x.decode("utf-8")}
        except UnicodeDecodeError:
            return {"bytes_b64": base64.b64encode(x).decode()}
    if isinstance(x, (list, tuple)):
        return [jsonable(i) for i in x]
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (int, float, str, bool)) or x is None:
        return x
    if hasattr(x, "__iter__"):
        try:
            return [jsonable(i) for i in x]
        except Exception:
            pass
    return repr(x)


def section(title):
    ROWS.append(("##", title))
    print("=== " + title, flush=True)


def getpath(sub, group=G):
    cmd = {"prefix": "fs subvolume getpath", "vol_name": V, "sub_name": sub}
    if group:
        cmd["group_name"] = group
    r, b, s = quiet("mgr", cmd)
    return b.strip() if r == 0 else None


def sv_create(sub, group=G, **kw):
    cmd = {"prefix": "fs subvolume create", "vol_name": V, "sub_name": sub, "format": "json"}
    if group:
        cmd["group_name"] = group
    cmd.update(kw)
    return quiet("mgr", cmd)


def sv_rm(sub, group=G, force=True):
    cmd = {"prefix": "fs subvolume rm", "vol_name": V, "sub_name": sub, "force": force}
    if group:
        cmd["group_name"] = group
    return quiet("mgr", cmd)


def clone_state(name, group=G):
    r, b, s = quiet("mgr", {"prefix": "fs clone status", "vol_name": V, "clone_name": name,
                            "group_name": group, "format": "json"})
    if r != 0:
        return "ret=%s %s" % (r, s)
    try:
        return json.loads(b)["status"]["state"]
    except Exception:
        return b


def wait_clone(name, group=G, timeout=120):
    t0 = time.time()
    st = None
    while time.time() - t0 < timeout:
        st = clone_state(name, group)
        if st in ("complete", "failed", "canceled") or str(st).startswith("ret="):
            return st
        time.sleep(0.5)
    return st


def admin_path(fs_path):
    """Path of an fs path inside the admin ceph-fuse mount of '/'."""
    return os.path.join(MNT, "admin") + fs_path


def fuse_pids(mountpoint):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ceph-fuse") and mountpoint.encode() in argv:
            pids.append(int(d))
    return pids


def is_mounted(mp):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == mp for line in f)


def ceph_fuse(mp, name="client.admin", keyring=KEYRING, root=None, timeout=60):
    os.makedirs(mp, exist_ok=True)
    argv = ["ceph-fuse", "-c", CONF, "-n", name, "-k", keyring]
    if root:
        argv += ["-r", root]
    argv += [mp]
    r = sh(argv, timeout=timeout)
    if is_mounted(mp) and mp not in MOUNTS:
        MOUNTS.append(mp)
    r["argv"] = argv
    return r


def umount(mp, timeout=30):
    r = sh(["umount", mp], timeout=timeout)
    if r["rc"] != 0 and is_mounted(mp):
        r2 = sh(["umount", "-l", mp], timeout=timeout)
        r["lazy_umount"] = r2
    if not is_mounted(mp) and mp in MOUNTS:
        MOUNTS.remove(mp)
    return r


def write_keyring(entity, key):
    fd, path = tempfile.mkstemp(prefix="golden-%s-" % entity, suffix=".keyring", dir=BASE)
    with os.fdopen(fd, "w") as f:
        f.write("[%s]\n\tkey = %s\n" % (entity, key))
    os.chmod(path, 0o600)
    TMPFILES.append(path)
    return path


def get_or_create_key(entity, caps):
    r, b, s = quiet("mon", {"prefix": "auth get-or-create", "entity": entity, "caps": caps,
                            "format": "json"})
    if r != 0:
        print("!! auth get-or-create %s failed: %s %s" % (entity, r, s))
        return "AQ" + "B" * 36 + "=="  # placeholder; later cases then record the failures
    return json.loads(b)[0]["key"]


def write_files(d, n, size):
    os.makedirs(d, exist_ok=True)
    blob = os.urandom(size)
    for i in range(n):
        with open(os.path.join(d, "f%05d" % i), "wb") as f:
            f.write(blob)


def mgr_config(slug, name, value, note="", expect=None, force=False):
    cmd = {"prefix": "config set", "who": "mgr", "name": name, "value": str(value)}
    if force:
        cmd["force"] = True
    return mon(slug, cmd, note, expect)


# ---------------------------------------------------------------- connect
CL = rados.Rados(conffile=CONF, conf={"keyring": KEYRING, "rados_mon_op_timeout": "60"})
CL.connect(timeout=30)
CLNAMES = {id(CL): "client.admin"}
FS = None
if cephfs is not None and hasattr(cephfs.LibCephFS, "mds_command"):
    FS = cephfs.LibCephFS(rados_inst=CL)
    FS.init()
MDS_VIA = "cephfs.LibCephFS(rados_inst=cluster).mds_command(spec, json, b'')" if FS else "ceph tell"
T_START = time.time()

# =================================================================== A. cluster info
section("A. cluster / fs info")
mon("fs-ls-json", {"prefix": "fs ls", "format": "json"}, expect=0)
mon("fs-dump-json", {"prefix": "fs dump", "format": "json"}, expect=0)
mon("fs-dump-plain", {"prefix": "fs dump"}, expect=0)
mon("fs-get-json", {"prefix": "fs get", "fs_name": V, "format": "json"}, expect=0)
mgr("fs-volume-ls", {"prefix": "fs volume ls"}, expect=0)
mgr("fs-volume-ls-json", {"prefix": "fs volume ls", "format": "json"}, expect=0)
mon("fs-volume-ls-via-mon", {"prefix": "fs volume ls"}, "mgr command sent to the mon (proxy)", expect=0)
mgr("fs-volume-info", {"prefix": "fs volume info", "vol_name": V, "format": "json"}, expect=0)
mgr("fs-status-json", {"prefix": "fs status", "fs": V, "format": "json"}, expect=0)
mon("status-json", {"prefix": "status", "format": "json"}, expect=0)
mon("health-json", {"prefix": "health", "format": "json"}, expect=0)
mon("health-detail-json", {"prefix": "health", "detail": "detail", "format": "json"}, expect=0)
mon("health-plain", {"prefix": "health"}, expect=0)
mon("mon-dump-json", {"prefix": "mon dump", "format": "json"}, expect=0)
mon("quorum-status", {"prefix": "quorum_status", "format": "json"}, expect=0)
mon("osd-pool-ls-json", {"prefix": "osd pool ls", "format": "json"}, expect=0)
mon("osd-pool-ls-detail-json", {"prefix": "osd pool ls", "detail": "detail", "format": "json"}, expect=0)
mon("df-json", {"prefix": "df", "format": "json"}, expect=0)
mon("fsid-json", {"prefix": "fsid", "format": "json"}, expect=0)
mon("version-json", {"prefix": "version", "format": "json"}, expect=0)
mgr("mgr-get-command-descriptions", {"prefix": "get_command_descriptions"},
    "the mgr's whole command table (sigs of every volumes command in this release)", expect=0)
mon("mon-get-command-descriptions", {"prefix": "get_command_descriptions"},
    "the mon's command table", expect=0)

# =================================================================== B. subvolume groups
section("B. subvolume groups")
SG = "fs subvolumegroup "
mgr("sg-create-new", {"prefix": SG + "create", "vol_name": V, "group_name": "g1", "format": "json"}, expect=0)
mgr("sg-create-existing", {"prefix": SG + "create", "vol_name": V, "group_name": "g1", "format": "json"},
    "idempotent", expect=0)
mgr("sg-create-existing-csi", {"prefix": SG + "create", "vol_name": V, "group_name": G}, expect=0)
mgr("sg-create-existing-other-mode", {"prefix": SG + "create", "vol_name": V, "group_name": "g1", "mode": "700"},
    "existing group with a different mode", expect=0)
mgr("sg-info-after-mode", {"prefix": SG + "info", "vol_name": V, "group_name": "g1", "format": "json"},
    "does mode 700 from the second create show?", expect=0)
mgr("sg-create-missing-volume", {"prefix": SG + "create", "vol_name": "novol", "group_name": "g1"},
    expect=-errno.ENOENT)
mgr("sg-create-via-mon", {"prefix": SG + "create", "vol_name": V, "group_name": "gmon"},
    "through mon_command", expect=0)
mgr("sg-create-with-size", {"prefix": SG + "create", "vol_name": V, "group_name": "gsize", "size": GIB}, expect=0)
mgr("sg-create-bad-mode", {"prefix": SG + "create", "vol_name": V, "group_name": "gbadmode", "mode": "abc"},
    expect=-errno.EINVAL)
mgr("sg-create-bad-pool", {"prefix": SG + "create", "vol_name": V, "group_name": "gbadpool",
                           "pool_layout": "nosuchpool"}, expect=-errno.EINVAL)
mgr("sg-create-nogroup-reserved", {"prefix": SG + "create", "vol_name": V, "group_name": "_nogroup"},
    "the default group's reserved name", expect="nonzero")
mgr("sg-create-deleting-reserved", {"prefix": SG + "create", "vol_name": V, "group_name": "_deleting"},
    "name of the trash dir", expect="nonzero")
mgr("sg-ls", {"prefix": SG + "ls", "vol_name": V, "format": "json"}, expect=0)
mgr("sg-ls-plain", {"prefix": SG + "ls", "vol_name": V}, "no format given", expect=0)
mgr("sg-ls-missing-volume", {"prefix": SG + "ls", "vol_name": "novol", "format": "json"}, expect=-errno.ENOENT)
mgr("sg-getpath", {"prefix": SG + "getpath", "vol_name": V, "group_name": "g1"}, expect=0)
mgr("sg-getpath-missing", {"prefix": SG + "getpath", "vol_name": V, "group_name": "nogroup"}, expect=-errno.ENOENT)
mgr("sg-info", {"prefix": SG + "info", "vol_name": V, "group_name": G, "format": "json"}, expect=0)
mgr("sg-info-missing", {"prefix": SG + "info", "vol_name": V, "group_name": "nogroup", "format": "json"},
    expect=-errno.ENOENT)
mgr("sg-exist", {"prefix": SG + "exist", "vol_name": V}, expect=0)
mgr("sg-create-for-rm", {"prefix": SG + "create", "vol_name": V, "group_name": "grm"}, expect=0)
mgr("sg-rm-empty", {"prefix": SG + "rm", "vol_name": V, "group_name": "grm"}, expect=0)
mgr("sg-create-full", {"prefix": SG + "create", "vol_name": V, "group_name": "gfull"}, expect=0)
sv_create("s1", group="gfull")
mgr("sg-rm-with-subvolumes", {"prefix": SG + "rm", "vol_name": V, "group_name": "gfull"},
    "group contains subvolume s1", expect=-errno.ENOTEMPTY)
mgr("sg-rm-with-subvolumes-force", {"prefix": SG + "rm", "vol_name": V, "group_name": "gfull", "force": True},
    "force does not mean recursive?", expect="nonzero")
mgr("sg-rm-missing", {"prefix": SG + "rm", "vol_name": V, "group_name": "nogroup"}, expect=-errno.ENOENT)
mgr("sg-rm-missing-force", {"prefix": SG + "rm", "vol_name": V, "group_name": "nogroup", "force": True}, expect=0)
sv_rm("s1", group="gfull")
mgr("sg-rm-after-emptied", {"prefix": SG + "rm", "vol_name": V, "group_name": "gfull"},
    "after its only subvolume was removed (trash is async)", expect=0)
for g in ("gmon", "gsize"):
    quiet("mgr", {"prefix": SG + "rm", "vol_name": V, "group_name": g, "force": True})

# =================================================================== C. subvolume create
section("C. subvolume create")
SV = "fs subvolume "


def svc(slug, sub, note="", expect=0, group=G, target="mgr", **kw):
    cmd = {"prefix": SV + "create", "vol_name": V, "sub_name": sub}
    if group is not None:
        cmd["group_name"] = group
    cmd.update(kw)
    return case(slug, target, cmd, note, expect)


def svinfo(slug, sub, note="", expect=0, group=G):
    cmd = {"prefix": SV + "info", "vol_name": V, "sub_name": sub, "format": "json"}
    if group is not None:
        cmd["group_name"] = group
    return mgr(slug, cmd, note, expect)


svc("sv-create-plain", "sv-plain", format="json")
svc("sv-create-plain-no-format", "sv-plain2", "no format key at all")
svc("sv-create-size", "sv-size", size=GIB, format="json")
svc("sv-create-mode-777", "sv-mode", mode="777", format="json")
svinfo("sv-info-mode-777", "sv-mode", "mode field after mode=777")
svc("sv-create-mode-0777", "sv-mode0", mode="0777")
svc("sv-create-mode-invalid", "sv-badmode", mode="abc", expect=-errno.EINVAL)
mgr("sv-ls-after-bad-mode", {"prefix": SV + "ls", "vol_name": V, "group_name": G, "format": "json"},
    "is a half-created sv-badmode left behind?", expect=0)
svc("sv-create-pool-layout", "sv-pool", pool_layout=DATA_POOL, format="json")
svc("sv-create-pool-layout-invalid", "sv-badpool", pool_layout="nosuchpool", expect=-errno.EINVAL)
svc("sv-create-pool-layout-metadata-pool", "sv-metapool", "metadata pool is not a data pool of the fs",
    pool_layout=META_POOL, expect="nonzero")
svc("sv-create-group-missing", "sv-x", group="nogroup", expect=-errno.ENOENT)
svc("sv-create-volume-missing", "sv-x", target="mgr", expect=-errno.ENOENT,
    **{"vol_name": "novol"})
svc("sv-create-size-again-same", "sv-size", "same args again: idempotent", size=GIB, format="json")
svc("sv-create-size-again-different", "sv-size", "same name, size 2 GiB", size=2 * GIB, format="json")
svinfo("sv-info-after-different-size", "sv-size", "does the quota follow the second create?")
svc("sv-create-again-no-size", "sv-size", "same name, no size at all")
svinfo("sv-info-after-create-without-size", "sv-size", "is the quota kept or removed?")
svc("sv-create-namespace-isolated", "sv-ns", namespace_isolated=True, format="json")
svinfo("sv-info-namespace-isolated", "sv-ns", "pool_namespace should be fsvolumens_sv-ns")
svc("sv-create-uid-gid", "sv-uid", uid=1000, gid=1000, format="json")
svinfo("sv-info-uid-gid", "sv-uid")
svc("sv-create-size-zero", "sv-zero", "size 0", size=0, format="json")
svinfo("sv-info-size-zero", "sv-zero", "size 0 means no quota?")
svc("sv-create-size-negative", "sv-neg", size=-1, expect="nonzero")
svc("sv-create-size-string", "sv-strsize", "wrong type for a CephInt", size="abc", expect=-errno.EINVAL)
svc("sv-create-size-numeric-string", "sv-strsize2", "size as a JSON string of digits", size="1073741824")
svinfo("sv-info-size-numeric-string", "sv-strsize2", expect=None)
svc("sv-create-via-mon", "sv-viamon", "mgr command through mon_command (proxy)", target="mon", format="json")
svc("sv-create-default-group", "sv-nogroup", "no group_name: default group _nogroup", group=None, format="json")
mgr("sv-getpath-default-group", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "sv-nogroup"}, expect=0)
svc("sv-create-group-nogroup-explicit", "sv-nogroup2", group="_nogroup")
svc("sv-create-same-name-as-group", "g1", "subvolume named like an existing group")
mgr("sv-ls-default-group", {"prefix": SV + "ls", "vol_name": V, "format": "json"}, expect=0)

# =================================================================== D. getpath/info/exist/ls/resize
section("D. subvolume getpath / info / exist / ls / resize")
mgr("sv-getpath", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "sv-plain", "group_name": G}, expect=0)
mgr("sv-getpath-json", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "sv-plain", "group_name": G,
                        "format": "json"}, "format json given: still plain?", expect=0)
mgr("sv-getpath-missing", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "nosv", "group_name": G},
    expect=-errno.ENOENT)
mgr("sv-getpath-group-missing", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "sv-plain",
                                 "group_name": "nogroup"}, expect=-errno.ENOENT)
svinfo("sv-info-no-quota", "sv-plain", "bytes_quota infinite expected")
svinfo("sv-info-quota", "sv-size")
mgr("sv-info-plain-format", {"prefix": SV + "info", "vol_name": V, "sub_name": "sv-plain", "group_name": G},
    "no format key", expect=0)
svinfo("sv-info-missing", "nosv", expect=-errno.ENOENT)
mgr("sv-exist-yes", {"prefix": SV + "exist", "vol_name": V, "group_name": G}, expect=0)
mgr("sv-exist-empty-group", {"prefix": SV + "exist", "vol_name": V, "group_name": "g1"}, expect=0)
mgr("sv-exist-missing-group", {"prefix": SV + "exist", "vol_name": V, "group_name": "nogroup"}, expect=-errno.ENOENT)
mgr("sv-ls", {"prefix": SV + "ls", "vol_name": V, "group_name": G, "format": "json"}, expect=0)
mgr("sv-ls-plain", {"prefix": SV + "ls", "vol_name": V, "group_name": G}, "no format key", expect=0)
mgr("sv-ls-empty-group", {"prefix": SV + "ls", "vol_name": V, "group_name": "g1", "format": "json"}, expect=0)
mgr("sv-ls-missing-group", {"prefix": SV + "ls", "vol_name": V, "group_name": "nogroup", "format": "json"},
    expect=-errno.ENOENT)


def resize(slug, sub, new_size, note="", expect=0, **kw):
    cmd = {"prefix": SV + "resize", "vol_name": V, "sub_name": sub, "group_name": G, "new_size": new_size,
           "format": "json"}
    cmd.update(kw)
    return mgr(slug, cmd, note, expect)


resize("sv-resize-grow", "sv-size", str(3 * GIB), no_shrink=True)
resize("sv-resize-grow-int", "sv-size", 3 * GIB, "new_size as a JSON int (declared CephString)", expect=None)
resize("sv-resize-infinite", "sv-size", "infinite")
svinfo("sv-info-after-infinite", "sv-size")
resize("sv-resize-inf", "sv-size", "inf", "'inf' short form", expect=None)
resize("sv-resize-invalid", "sv-size", "abc", expect=-errno.EINVAL)
resize("sv-resize-zero", "sv-size", "0", expect=-errno.EINVAL)
resize("sv-resize-negative", "sv-size", "-5", expect=-errno.EINVAL)
resize("sv-resize-unit-suffix", "sv-size", "1G", "unit suffix", expect=None)
resize("sv-resize-missing", "nosv", str(GIB), expect=-errno.ENOENT)
resize("sv-resize-shrink-empty", "sv-size", str(GIB), "shrink of an empty subvolume with no_shrink", no_shrink=True)

# ---- admin mount of / to write data where needed
ADMIN_MNT = os.path.join(MNT, "admin")
r = ceph_fuse(ADMIN_MNT)
ADMIN_OK = is_mounted(ADMIN_MNT)
print("admin mount:", r["rc"], r["stderr"][:200], ADMIN_OK)

svc("sv-create-data", "sv-data", size=100 * MIB, format="json")
p_data = getpath("sv-data")
used_note = ""
if ADMIN_OK and p_data:
    try:
        write_files(admin_path(p_data), 20, MIB)
        os.sync()
        t0 = time.time()
        used = 0
        while time.time() - t0 < 60:
            r_, b_, s_ = quiet("mgr", {"prefix": SV + "info", "vol_name": V, "sub_name": "sv-data",
                                       "group_name": G, "format": "json"})
            used = json.loads(b_)["bytes_used"] if r_ == 0 else 0
            if used >= 20 * MIB:
                break
            time.sleep(1)
        used_note = "20 MiB written via ceph-fuse; bytes_used=%s after %.1fs" % (used, time.time() - t0)
    except Exception as e:
        used_note = "writing data failed: %r" % e
svinfo("sv-info-with-data", "sv-data", used_note)
resize("sv-resize-shrink-below-used-no-shrink", "sv-data", str(10 * MIB), used_note, expect=-errno.EINVAL,
       no_shrink=True)
resize("sv-resize-shrink-below-used", "sv-data", str(10 * MIB), "same without no_shrink", expect=0)
svinfo("sv-info-after-shrink-below-used", "sv-data", "bytes_pcent over 100?")
resize("sv-resize-shrink-above-used-no-shrink", "sv-data", str(50 * MIB), "50 MiB > 20 MiB used", no_shrink=True)

# =================================================================== E/F. snapshots, rm, clones
section("E. snapshots")
SN = SV + "snapshot "


def snap(slug, verb, sub, snapname, note="", expect=0, group=G, **kw):
    cmd = {"prefix": SN + verb, "vol_name": V, "sub_name": sub, "snap_name": snapname}
    if group is not None:
        cmd["group_name"] = group
    cmd.update(kw)
    return mgr(slug, cmd, note, expect)


svc("sv-create-snapsrc", "sv-snap", size=GIB, format="json")
p_snap = getpath("sv-snap")
if ADMIN_OK and p_snap:
    try:
        write_files(admin_path(p_snap), 5, 64 * 1024)
        os.makedirs(admin_path(p_snap) + "/sub/dir", exist_ok=True)
        with open(admin_path(p_snap) + "/sub/dir/hello.txt", "w") as f:
            f.write("hello\n")
    except Exception as e:
        print("write snap data failed", e)
snap("snap-create", "create", "sv-snap", "snap1", format="json")
snap("snap-create-again", "create", "sv-snap", "snap1", "idempotent?")
snap("snap-create-missing-subvolume", "create", "nosv", "snap1", expect=-errno.ENOENT)
snap("snap-create-missing-group", "create", "sv-snap", "snap1", group="nogroup", expect=-errno.ENOENT)
snap("snap-create-2", "create", "sv-snap", "snap2")
mgr("snap-ls", {"prefix": SN + "ls", "vol_name": V, "sub_name": "sv-snap", "group_name": G, "format": "json"},
    expect=0)
mgr("snap-ls-empty", {"prefix": SN + "ls", "vol_name": V, "sub_name": "sv-plain", "group_name": G,
                      "format": "json"}, expect=0)
mgr("snap-ls-missing-subvolume", {"prefix": SN + "ls", "vol_name": V, "sub_name": "nosv", "group_name": G,
                                  "format": "json"}, expect=-errno.ENOENT)
snap("snap-info", "info", "sv-snap", "snap1", format="json")
snap("snap-info-missing", "info", "sv-snap", "nosnap", format="json", expect=-errno.ENOENT)
snap("snap-rm", "rm", "sv-snap", "snap2")
snap("snap-rm-missing", "rm", "sv-snap", "snap2", expect=-errno.ENOENT)
snap("snap-rm-missing-force", "rm", "sv-snap", "snap2", force=True)
snap("snap-rm-missing-subvolume-force", "rm", "nosv", "snap2", "subvolume missing, force", force=True, expect=None)
snap("snap-protect", "protect", "sv-snap", "snap1", "deprecated no-op in this release?", expect=None)
snap("snap-unprotect", "unprotect", "sv-snap", "snap1", expect=None)
svinfo("sv-info-with-snapshot", "sv-snap", "features list of a v2 subvolume")

section("E2. subvolume rm")
svc("sv-create-for-rm", "sv-rm")
mgr("sv-rm", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-rm", "group_name": G}, expect=0)
mgr("sv-rm-missing", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-rm", "group_name": G},
    expect=-errno.ENOENT)
mgr("sv-rm-missing-force", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-rm", "group_name": G,
                            "force": True}, expect=0)
mgr("sv-rm-missing-group-force", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-rm",
                                  "group_name": "nogroup", "force": True}, "group missing, force", expect=None)
mgr("sv-rm-with-snapshots", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-snap", "group_name": G},
    expect=-errno.ENOTEMPTY)
mgr("sv-rm-with-snapshots-force", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-snap", "group_name": G,
                                   "force": True}, "force does not override snapshots?", expect=-errno.ENOTEMPTY)
svc("sv-create-retain", "sv-retain")
snap("snap-create-on-retain", "create", "sv-retain", "rsnap")
mgr("sv-rm-retain-snapshots", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-retain", "group_name": G,
                               "retain_snapshots": True}, expect=0)
svinfo("sv-info-retained", "sv-retain", "snapshot-retained subvolume")
mgr("sv-ls-with-retained", {"prefix": SV + "ls", "vol_name": V, "group_name": G, "format": "json"},
    "is the retained one listed?", expect=0)
mgr("sv-getpath-retained", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "sv-retain", "group_name": G},
    expect="nonzero")
mgr("snap-ls-retained", {"prefix": SN + "ls", "vol_name": V, "sub_name": "sv-retain", "group_name": G,
                         "format": "json"}, expect=0)
snap("snap-info-retained", "info", "sv-retain", "rsnap", format="json")
snap("snap-create-on-retained", "create", "sv-retain", "rsnap2", "new snapshot on a retained subvolume",
     expect="nonzero")
mgr("sv-rm-retained-again", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-retain", "group_name": G},
    "rm of a retained subvolume (no retain flag)", expect="nonzero")
mgr("sv-rm-retained-again-retain", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-retain", "group_name": G,
                                    "retain_snapshots": True}, "rm retain again", expect=None)
svc("sv-create-over-retained", "sv-retain", "recreate a subvolume whose snapshots were retained", expect=None)
svinfo("sv-info-recreated", "sv-retain", expect=None)
mgr("sg-rm-with-retained", {"prefix": SG + "rm", "vol_name": V, "group_name": G},
    "csi has subvolumes and retained snapshots", expect=-errno.ENOTEMPTY)
# second retained subvolume: remove its last snapshot -> does the subvolume go away?
svc("sv-create-retain2", "sv-retain2")
snap("snap-create-on-retain2", "create", "sv-retain2", "r2snap")
mgr("sv-rm-retain2-retain-snapshots", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-retain2",
                                       "group_name": G, "retain_snapshots": True}, expect=0)
mgr("sv-rm-retain-snapshots-without-snapshots", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-plain2",
                                                 "group_name": G, "retain_snapshots": True},
    "retain_snapshots on a subvolume that has none", expect=None)
snap("snap-rm-last-of-retained", "rm", "sv-retain2", "r2snap", "last snapshot of a retained subvolume")
svinfo("sv-info-retained-after-last-snap-rm", "sv-retain2", "is the subvolume purged?", expect=-errno.ENOENT)

section("F. clones")
CL_ = "fs clone "


def clone(slug, sub, snapname, target, note="", expect=0, group=G, tgroup=G, **kw):
    cmd = {"prefix": SN + "clone", "vol_name": V, "sub_name": sub, "snap_name": snapname,
           "target_sub_name": target, "group_name": group, "target_group_name": tgroup, "format": "json"}
    cmd.update(kw)
    return mgr(slug, cmd, note, expect)


def cstatus(slug, name, note="", expect=0, group=G):
    return mgr(slug, {"prefix": CL_ + "status", "vol_name": V, "clone_name": name, "group_name": group,
                      "format": "json"}, note, expect)


def poll_clone_states(prefix, name, group=G, timeout=120, interval=0.05):
    """Record clone status at each state change until a final state."""
    seen = []
    polls = []
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        rec = call("mgr", {"prefix": CL_ + "status", "vol_name": V, "clone_name": name, "group_name": group,
                           "format": "json"})
        try:
            st = rec["outb_json"]["status"]["state"]
        except Exception:
            st = "ret=%s" % rec.get("ret")
        polls.append((round(time.monotonic() - t0, 3), st))
        if st != last:
            rec["poll_t_s"] = round(time.monotonic() - t0, 3)
            save("%s-%s" % (prefix, st), rec, "fs clone status %s (state %s)" % (name, st),
                 "first poll that showed '%s'" % st, 0)
            seen.append(st)
            last = st
        if st in ("complete", "failed", "canceled") or st.startswith("ret="):
            break
        time.sleep(interval)
    return seen, polls


clone("clone-ok", "sv-snap", "snap1", "cl1")
seen1, polls1 = poll_clone_states("clone-status-cl1", "cl1")
print("cl1 states", seen1, "polls", len(polls1))
svinfo("sv-info-clone-complete", "cl1", "type should be 'clone'")
clone("clone-target-exists", "sv-snap", "snap1", "cl1", expect=-errno.EEXIST)
clone("clone-target-exists-plain-subvolume", "sv-snap", "snap1", "sv-plain", "target is a normal subvolume",
      expect=-errno.EEXIST)
clone("clone-missing-snapshot", "sv-snap", "nosnap", "cl-x", expect=-errno.ENOENT)
clone("clone-missing-source", "nosv", "snap1", "cl-x", expect=-errno.ENOENT)
clone("clone-missing-target-group", "sv-snap", "snap1", "cl-x", tgroup="nogroup", expect=-errno.ENOENT)
clone("clone-into-other-group", "sv-snap", "snap1", "cl-g1", "target group g1", tgroup="g1")
wait_clone("cl-g1", "g1")
clone("clone-bad-pool-layout", "sv-snap", "snap1", "cl-badpool", pool_layout="nosuchpool", expect=-errno.EINVAL)
cstatus("clone-status-not-a-clone", "sv-plain", expect=-errno.ENOTSUP)
cstatus("clone-status-missing", "nosv", expect=-errno.ENOENT)
mgr("clone-cancel-complete", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "cl1", "group_name": G},
    expect=-errno.EINVAL)
mgr("clone-cancel-not-a-clone", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "sv-plain",
                                 "group_name": G}, expect="nonzero")
mgr("clone-cancel-missing", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "nosv", "group_name": G},
    expect=-errno.ENOENT)
snap("snap-info-after-clone", "info", "sv-snap", "snap1", format="json")

# ---- pending clone via snapshot_clone_delay
mgr_config("config-set-clone-delay", "mgr/volumes/snapshot_clone_delay", 15, expect=0)
time.sleep(2)
clone("clone-delayed", "sv-snap", "snap1", "cl2", "snapshot_clone_delay=15")
cstatus("clone-status-pending", "cl2", "expected pending during the delay")
svinfo("sv-info-clone-pending", "cl2", "expected EAGAIN not ready", expect=-errno.EAGAIN)
mgr("sv-getpath-clone-pending", {"prefix": SV + "getpath", "vol_name": V, "sub_name": "cl2", "group_name": G},
    expect=-errno.EAGAIN)
snap("snap-create-on-pending-clone", "create", "cl2", "s", expect=-errno.EAGAIN)
mgr("sv-resize-clone-pending", {"prefix": SV + "resize", "vol_name": V, "sub_name": "cl2", "group_name": G,
                                "new_size": str(GIB)}, expect=-errno.EAGAIN)
snap("snap-info-pending-clones", "info", "sv-snap", "snap1", "has_pending_clones yes", format="json")
snap("snap-rm-with-pending-clone", "rm", "sv-snap", "snap1", expect=-errno.EAGAIN)
snap("snap-rm-with-pending-clone-force", "rm", "sv-snap", "snap1", force=True, expect=-errno.EAGAIN)
mgr("sv-rm-with-pending-clone", {"prefix": SV + "rm", "vol_name": V, "sub_name": "sv-snap", "group_name": G,
                                 "force": True}, "source subvolume of a pending clone", expect="nonzero")
mgr("sv-rm-pending-clone", {"prefix": SV + "rm", "vol_name": V, "sub_name": "cl2", "group_name": G},
    "rm of the pending clone itself, no force", expect=-errno.EAGAIN)
mgr("sv-ls-with-pending-clone", {"prefix": SV + "ls", "vol_name": V, "group_name": G, "format": "json"},
    expect=0)
mgr("clone-cancel-pending", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "cl2", "group_name": G},
    expect=0)
cstatus("clone-status-canceled", "cl2", "after cancel")
svinfo("sv-info-clone-canceled", "cl2", expect=None)
mgr("clone-cancel-canceled", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "cl2", "group_name": G},
    "cancel again", expect="nonzero")
mgr("sv-rm-canceled-clone", {"prefix": SV + "rm", "vol_name": V, "sub_name": "cl2", "group_name": G},
    "no force", expect=None)
mgr("sv-rm-canceled-clone-force", {"prefix": SV + "rm", "vol_name": V, "sub_name": "cl2", "group_name": G,
                                   "force": True}, expect=None)
mgr_config("config-set-clone-delay-0", "mgr/volumes/snapshot_clone_delay", 0, expect=0)
time.sleep(2)

# ---- running clone (many files), cancel it
svc("sv-create-big", "sv-big", format="json")
p_big = getpath("sv-big")
big_note = ""
if ADMIN_OK and p_big:
    t0 = time.time()
    try:
        write_files(admin_path(p_big) + "/many", 1500, 4096)
        with open(admin_path(p_big) + "/large.bin", "wb") as f:
            for _ in range(64):
                f.write(os.urandom(MIB))
        big_note = "1500 x 4 KiB files + 64 MiB file written in %.1fs" % (time.time() - t0)
    except Exception as e:
        big_note = "write failed: %r" % e
snap("snap-create-big", "create", "sv-big", "bigsnap", big_note)
clone("clone-big", "sv-big", "bigsnap", "cl3", big_note)
cl3_states = []
t0 = time.monotonic()
caught = False
while time.monotonic() - t0 < 30:
    st = clone_state("cl3")
    cl3_states.append(st)
    if st == "in-progress":
        caught = True
        break
    if st in ("complete", "failed", "canceled"):
        break
    time.sleep(0.02)
cstatus("clone-status-in-progress", "cl3", "states polled: %s" % sorted(set(map(str, cl3_states))),
        expect=0)
svinfo("sv-info-clone-in-progress", "cl3", expect=-errno.EAGAIN)
mgr("clone-cancel-in-progress", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "cl3", "group_name": G},
    "caught in-progress: %s" % caught, expect=0)
time.sleep(1)
cstatus("clone-status-after-cancel-in-progress", "cl3")
mgr("sv-rm-canceled-clone-cl3-force", {"prefix": SV + "rm", "vol_name": V, "sub_name": "cl3", "group_name": G,
                                       "force": True}, expect=0)

# ---- concurrency options
mgr_config("config-set-max-concurrent-clones-1", "mgr/volumes/max_concurrent_clones", 1, expect=0)
mgr_config("config-set-snapshot-clone-no-wait", "mgr/volumes/snapshot_clone_no_wait", "true",
           "option exists only in newer releases", expect=0)
mon("config-get-mgr-volumes", {"prefix": "config get", "who": "mgr", "key": "mgr/volumes/max_concurrent_clones",
                               "format": "json"}, expect=0)
time.sleep(2)
for i in range(3):
    clone("clone-concurrent-%d" % (i + 1), "sv-big", "bigsnap", "clc%d" % (i + 1),
          "max_concurrent_clones=1; 3 clones back-to-back", expect=None)
for i in range(3):
    cstatus("clone-status-concurrent-%d" % (i + 1), "clc%d" % (i + 1), expect=None)
snap("snap-info-three-pending", "info", "sv-big", "bigsnap", format="json")
for i in range(3):
    quiet("mgr", {"prefix": CL_ + "cancel", "vol_name": V, "clone_name": "clc%d" % (i + 1), "group_name": G})
for i in range(3):
    cstatus("clone-status-concurrent-%d-after-cancel" % (i + 1), "clc%d" % (i + 1), expect=None)
for i in range(3):
    sv_rm("clc%d" % (i + 1))
mon("config-rm-max-concurrent-clones", {"prefix": "config rm", "who": "mgr",
                                        "name": "mgr/volumes/max_concurrent_clones"}, expect=0)
mon("config-rm-snapshot-clone-no-wait", {"prefix": "config rm", "who": "mgr",
                                         "name": "mgr/volumes/snapshot_clone_no_wait"}, expect=None)

# =================================================================== G. metadata
section("G. metadata")
MD = SV + "metadata "


def md(slug, verb, note="", expect=0, sub="sv-plain", **kw):
    cmd = {"prefix": MD + verb, "vol_name": V, "sub_name": sub, "group_name": G}
    cmd.update(kw)
    return mgr(slug, cmd, note, expect)


md("md-set", "set", key_name="csi.storage.k8s.io/pvc/name", value="pvc-1", format="json")
md("md-set-upper", "set", "upper-case key", key_name="MyKey", value="Value-With-Case")
md("md-set-overwrite", "set", key_name="csi.storage.k8s.io/pvc/name", value="pvc-2")
md("md-ls", "ls", format="json")
md("md-get", "get", key_name="csi.storage.k8s.io/pvc/name")
md("md-get-upper-as-lower", "get", key_name="mykey")
md("md-get-upper-as-upper", "get", key_name="MyKey")
md("md-get-missing", "get", key_name="nokey", expect=-errno.ENOENT)
md("md-rm", "rm", key_name="MYKEY", format="json")
md("md-rm-missing", "rm", key_name="nokey", expect=-errno.ENOENT)
md("md-rm-missing-force", "rm", key_name="nokey", force=True)
md("md-ls-after-rm", "ls", format="json")
md("md-ls-empty", "ls", sub="sv-mode", format="json")
md("md-get-no-metadata-section", "get", "subvolume never had metadata", sub="sv-mode", key_name="k",
   expect=-errno.ENOENT)
md("md-set-missing-subvolume", "set", sub="nosv", key_name="k", value="v", expect=-errno.ENOENT)
md("md-set-empty-value", "set", key_name="empty", value="")
md("md-get-empty-value", "get", key_name="empty")
SMD = SN + "metadata "


def smd(slug, verb, note="", expect=0, snapname="snap1", **kw):
    cmd = {"prefix": SMD + verb, "vol_name": V, "sub_name": "sv-snap", "snap_name": snapname, "group_name": G}
    cmd.update(kw)
    return mgr(slug, cmd, note, expect)


smd("smd-set", "set", key_name="csi.storage.k8s.io/volumesnapshot/name", value="snap-a", format="json")
smd("smd-set-upper", "set", key_name="SnapKey", value="V")
smd("smd-ls", "ls", format="json")
smd("smd-get", "get", key_name="csi.storage.k8s.io/volumesnapshot/name")
smd("smd-get-upper", "get", key_name="SnapKey")
smd("smd-get-missing", "get", key_name="nokey", expect=-errno.ENOENT)
smd("smd-rm", "rm", key_name="snapkey")
smd("smd-rm-missing", "rm", key_name="nokey", expect=-errno.ENOENT)
smd("smd-rm-missing-force", "rm", key_name="nokey", force=True)
smd("smd-set-missing-snapshot", "set", snapname="nosnap", key_name="k", value="v", expect=-errno.ENOENT)
smd("smd-ls-after-rm", "ls", format="json")

# =================================================================== H. authorize
section("H. subvolume authorize")
AU = SV


def auth_(slug, verb, auth_id=None, note="", expect=0, sub="sv-plain", **kw):
    cmd = {"prefix": AU + verb, "vol_name": V, "sub_name": sub, "group_name": G}
    if auth_id is not None:
        cmd["auth_id"] = auth_id
    cmd.update(kw)
    return mgr(slug, cmd, note, expect)


auth_("authz-rw-tenant", "authorize", "alice", "tenant_id given: key returned?", access_level="rw", tenant_id="t1")
auth_("authz-r-no-tenant", "authorize", "bob", access_level="r")
auth_("authz-default-level", "authorize", "carol", "no access_level")
auth_("authz-same-again", "authorize", "alice", "same again", access_level="rw", tenant_id="t1")
auth_("authz-second-subvolume", "authorize", "alice", "same auth id, other subvolume", sub="sv-size",
      access_level="r", tenant_id="t1")
auth_("authz-other-tenant", "authorize", "alice", "same auth id, other tenant", access_level="rw",
      tenant_id="t2", expect="nonzero")
auth_("authz-bad-level", "authorize", "dave", access_level="x", expect=-errno.EINVAL)
auth_("authz-missing-subvolume", "authorize", "dave", sub="nosv", expect=-errno.ENOENT)
get_or_create_key("client.preexisting", ["mon", "allow r"])
auth_("authz-existing-id", "authorize", "preexisting", "auth id not created by volumes", access_level="rw",
      expect=-errno.EPERM)
auth_("authz-existing-id-allowed", "authorize", "preexisting", access_level="rw", allow_existing_id=True)
auth_("authz-list", "authorized_list", format="json")
auth_("authz-list-plain", "authorized_list", note="no format key")
auth_("authz-list-none", "authorized_list", sub="sv-mode", format="json")
mon("auth-get-alice", {"prefix": "auth get", "entity": "client.alice", "format": "json"}, "caps written by volumes")
mon("auth-get-bob", {"prefix": "auth get", "entity": "client.bob", "format": "json"})
mon("auth-get-preexisting", {"prefix": "auth get", "entity": "client.preexisting", "format": "json"})
auth_("authz-evict-no-sessions", "evict", "alice", "nobody mounted")
auth_("authz-evict-unknown-id", "evict", "nobody", expect=None)
auth_("deauthz-alice", "deauthorize", "alice")
auth_("deauthz-alice-again", "deauthorize", "alice", expect="nonzero")
auth_("deauthz-unknown", "deauthorize", "nobody", expect="nonzero")
auth_("authz-list-after-deauth", "authorized_list", format="json")
mon("auth-get-alice-after-deauth", {"prefix": "auth get", "entity": "client.alice", "format": "json"},
    "alice still holds sv-size", expect=0)
auth_("deauthz-bob", "deauthorize", "bob")
mon("auth-get-bob-after-deauth", {"prefix": "auth get", "entity": "client.bob", "format": "json"},
    "bob had only this subvolume", expect=None)
auth_("deauthz-preexisting", "deauthorize", "preexisting")
mon("auth-get-preexisting-after-deauth", {"prefix": "auth get", "entity": "client.preexisting",
                                          "format": "json"}, expect=None)

# =================================================================== I. auth
section("I. auth (mon)")
CAPS1 = ["mon", "allow r", "osd", "allow rw pool=%s" % DATA_POOL]
mon("auth-goc-new", {"prefix": "auth get-or-create", "entity": "client.golden1", "caps": CAPS1, "format": "json"})
mon("auth-goc-same", {"prefix": "auth get-or-create", "entity": "client.golden1", "caps": CAPS1, "format": "json"},
    "idempotent")
mon("auth-goc-same-plain", {"prefix": "auth get-or-create", "entity": "client.golden1", "caps": CAPS1},
    "no format: keyring text")
mon("auth-goc-no-caps", {"prefix": "auth get-or-create", "entity": "client.golden1", "format": "json"},
    "existing entity, no caps given", expect=None)
mon("auth-goc-different-caps", {"prefix": "auth get-or-create", "entity": "client.golden1",
                                "caps": ["mon", "allow rw"], "format": "json"}, expect=-errno.EINVAL)
mon("auth-goc-extra-cap", {"prefix": "auth get-or-create", "entity": "client.golden1",
                           "caps": CAPS1 + ["mds", "allow rw"], "format": "json"}, expect=-errno.EINVAL)
mon("auth-goc-new-no-caps", {"prefix": "auth get-or-create", "entity": "client.nocaps", "format": "json"})
mon("auth-goc-key", {"prefix": "auth get-or-create-key", "entity": "client.golden1", "caps": CAPS1,
                     "format": "json"})
mon("auth-get", {"prefix": "auth get", "entity": "client.golden1", "format": "json"})
mon("auth-get-plain", {"prefix": "auth get", "entity": "client.golden1"})
mon("auth-get-missing", {"prefix": "auth get", "entity": "client.nobody", "format": "json"}, expect=-errno.ENOENT)
mon("auth-get-key", {"prefix": "auth get-key", "entity": "client.golden1", "format": "json"})
mon("auth-get-key-plain", {"prefix": "auth get-key", "entity": "client.golden1"})
mon("auth-get-key-missing", {"prefix": "auth get-key", "entity": "client.nobody"}, expect=-errno.ENOENT)
mon("auth-print-key", {"prefix": "auth print-key", "entity": "client.golden1"})
mon("auth-print-key-json", {"prefix": "auth print-key", "entity": "client.golden1", "format": "json"})
mon("auth-print_key", {"prefix": "auth print_key", "entity": "client.golden1"}, "underscore alias")
mon("auth-caps", {"prefix": "auth caps", "entity": "client.golden1", "caps": ["mon", "allow rw", "mds", "allow"]})
mon("auth-get-after-caps", {"prefix": "auth get", "entity": "client.golden1", "format": "json"},
    "auth caps replaces all caps (osd gone?)")
mon("auth-caps-missing", {"prefix": "auth caps", "entity": "client.nobody", "caps": ["mon", "allow r"]},
    expect=-errno.ENOENT)
mon("auth-caps-malformed", {"prefix": "auth caps", "entity": "client.golden1", "caps": ["mon", "allow foo"]},
    expect=-errno.EINVAL)
mon("auth-ls-json", {"prefix": "auth ls", "format": "json"})
mon("auth-ls-plain", {"prefix": "auth ls"})
mon("auth-list-alias", {"prefix": "auth list", "format": "json"}, expect=0)
mon("auth-add", {"prefix": "auth add", "entity": "client.added", "caps": ["mon", "allow r"]})
mon("auth-add-again-same", {"prefix": "auth add", "entity": "client.added", "caps": ["mon", "allow r"]},
    expect=None)
mon("auth-add-again-different", {"prefix": "auth add", "entity": "client.added", "caps": ["mon", "allow rw"]},
    expect="nonzero")
mon("auth-rm", {"prefix": "auth rm", "entity": "client.golden1"})
mon("auth-rm-missing", {"prefix": "auth rm", "entity": "client.golden1"}, expect=None)
mon("auth-del", {"prefix": "auth del", "entity": "client.added"}, "alias")
mon("auth-get-after-rm", {"prefix": "auth get", "entity": "client.golden1"}, expect=-errno.ENOENT)
mon("auth-goc-malformed-mon-cap", {"prefix": "auth get-or-create", "entity": "client.bad1",
                                   "caps": ["mon", "allow foo"], "format": "json"}, expect=-errno.EINVAL)
mon("auth-goc-malformed-osd-cap", {"prefix": "auth get-or-create", "entity": "client.bad2",
                                   "caps": ["osd", "allow foo"], "format": "json"}, expect=-errno.EINVAL)
mon("auth-goc-malformed-mds-cap", {"prefix": "auth get-or-create", "entity": "client.bad3",
                                   "caps": ["mds", "allow foo"], "format": "json"}, expect=-errno.EINVAL)
mon("auth-goc-malformed-mgr-cap", {"prefix": "auth get-or-create", "entity": "client.bad4",
                                   "caps": ["mgr", "allow foo"], "format": "json"}, expect=-errno.EINVAL)
mon("auth-goc-unknown-service", {"prefix": "auth get-or-create", "entity": "client.bad5",
                                 "caps": ["foo", "allow r"], "format": "json"}, expect=None)
mon("auth-goc-odd-caps", {"prefix": "auth get-or-create", "entity": "client.bad6", "caps": ["mon"],
                          "format": "json"}, "odd-length caps list", expect=-errno.EINVAL)
mon("auth-goc-bad-entity", {"prefix": "auth get-or-create", "entity": "badentity", "caps": ["mon", "allow r"],
                            "format": "json"}, "no type prefix", expect=-errno.EINVAL)
mon("auth-goc-path-caps", {"prefix": "auth get-or-create", "entity": "client.pathcap",
                           "caps": ["mon", "allow r", "mds", "allow rw path=/volumes/csi",
                                    "osd", "allow rw tag cephfs data=cephfs"], "format": "json"})
mon("auth-goc-csi-recommended", {"prefix": "auth get-or-create", "entity": "client.csi-rec",
                                 "caps": ["mgr", "allow rw", "osd",
                                          "allow rw tag cephfs metadata=cephfs, allow rw tag cephfs data=cephfs",
                                          "mds", "allow r fsname=cephfs path=/volumes, "
                                                 "allow rws fsname=cephfs path=/volumes/csi",
                                          "mon", "allow r fsname=cephfs"], "format": "json"},
         "caps recommended by ceph-csi docs/capabilities.md")
FSA = {"prefix": "fs authorize", "filesystem": V, "entity": "client.fsauth", "caps": ["/", "rw"], "format": "json"}
mon("fs-authorize", FSA)
mon("fs-authorize-again", FSA, "same again", expect=None)
mon("fs-authorize-different", dict(FSA, caps=["/volumes", "r"]), "same entity, other caps", expect="nonzero")
mon("fs-authorize-plain", {"prefix": "fs authorize", "filesystem": V, "entity": "client.fsauth2",
                           "caps": ["/volumes/csi", "rw"]}, "no format")
mon("fs-authorize-multi-path", {"prefix": "fs authorize", "filesystem": V, "entity": "client.fsauth3",
                                "caps": ["/a", "r", "/b", "rwps"], "format": "json"})
mon("fs-authorize-bad-perm", {"prefix": "fs authorize", "filesystem": V, "entity": "client.fsauth4",
                              "caps": ["/", "rx"], "format": "json"}, expect=-errno.EINVAL)
mon("fs-authorize-missing-fs", {"prefix": "fs authorize", "filesystem": "nofs", "entity": "client.fsauth5",
                                "caps": ["/", "rw"], "format": "json"}, expect=-errno.ENOENT)
mon("auth-get-fsauth", {"prefix": "auth get", "entity": "client.fsauth", "format": "json"})

# =================================================================== J. generic errors
section("J. generic command errors")
mon("err-unknown-prefix-mon", {"prefix": "fs frobnicate"}, expect=-errno.EINVAL)
mgr("err-unknown-prefix-mgr", {"prefix": "fs frobnicate"}, expect=-errno.EINVAL)
mgr("err-unknown-subvolume-verb-mgr", {"prefix": "fs subvolume frobnicate", "vol_name": V},
    "go-ceph's 'No handler found' check", expect=-errno.EINVAL)
mon("err-unknown-subvolume-verb-mon", {"prefix": "fs subvolume frobnicate", "vol_name": V}, expect=-errno.EINVAL)
mgr("err-missing-arg-mgr", {"prefix": SV + "create", "vol_name": V}, "sub_name missing", expect=-errno.EINVAL)
mon("err-missing-arg-via-mon", {"prefix": SV + "create", "vol_name": V}, "sub_name missing", expect=-errno.EINVAL)
mon("err-missing-arg-mon", {"prefix": "auth get"}, "entity missing", expect=-errno.EINVAL)
mgr("err-wrong-type-mgr", {"prefix": SV + "create", "vol_name": V, "sub_name": "x", "size": "abc"},
    expect=-errno.EINVAL)
mon("err-wrong-type-via-mon", {"prefix": SV + "create", "vol_name": V, "sub_name": "x", "size": "abc"},
    expect=-errno.EINVAL)
mgr("err-wrong-type-bool-mgr", {"prefix": SV + "rm", "vol_name": V, "sub_name": "x", "force": "maybe"},
    expect=-errno.EINVAL)
mon("err-wrong-type-mon", {"prefix": "osd pool get", "pool": DATA_POOL, "var": 5}, "int for a string/choice",
    expect=None)
mgr("err-extra-arg-mgr", {"prefix": SV + "create", "vol_name": V, "sub_name": "sv-extra", "group_name": G,
                          "bogus": 1}, "unknown extra argument", expect=None)
mon("err-extra-arg-mon", {"prefix": "fs ls", "format": "json", "bogus": 1}, "unknown extra argument", expect=None)
mon("err-malformed-json-mon", None, raw="{", expect=-errno.EINVAL)
mgr("err-malformed-json-mgr", None, raw="{", expect=-errno.EINVAL)
mon("err-empty-object-mon", {}, "no prefix", expect=-errno.EINVAL)
mgr("err-empty-object-mgr", {}, "no prefix", expect=-errno.EINVAL)
mgr("err-prefix-not-string-mgr", {"prefix": 5}, expect=-errno.EINVAL)
mgr("err-json-array-mgr", None, raw='["fs ls"]', expect=-errno.EINVAL)
# (the same two inputs sent to the MON are in the last section: one of them aborts ceph-mon)
mon("err-bad-format-mon", {"prefix": "fs ls", "format": "yaml"}, "unsupported format", expect=None)
mgr("err-bad-format-mgr", {"prefix": SV + "ls", "vol_name": V, "group_name": G, "format": "xml"}, expect=None)
mgr("err-mon-command-via-mgr-fs-ls", {"prefix": "fs ls", "format": "json"},
    "a mon command sent with mgr_command", expect=None)
mgr("err-mon-command-via-mgr", {"prefix": "auth get", "entity": "client.admin", "format": "json"},
    "a mon command sent with mgr_command", expect=None)

# =================================================================== K. restricted users
section("K. restricted users")
lim_key = get_or_create_key("client.limited", ["mon", "allow r", "mgr", "allow r"])
nomgr_key = get_or_create_key("client.nomgr", ["mon", "allow r"])
mon("auth-get-limited", {"prefix": "auth get", "entity": "client.limited", "format": "json"})
LIMS = []
for ent, key in (("client.limited", lim_key), ("client.nomgr", nomgr_key)):
    kr = write_keyring(ent, key)
    c = rados.Rados(conffile=CONF, name=ent, conf={"keyring": kr, "rados_mon_op_timeout": "30"})
    try:
        c.connect(timeout=30)
        CLNAMES[id(c)] = ent
        LIMS.append(c)
    except Exception as e:
        save("connect-%s" % ent.replace(".", "-"), {"target": "rados-py", "ret": None, "exception": repr(e)},
             "connect as " + ent)
for c in LIMS:
    tag = CLNAMES[id(c)].split(".")[1]
    mgr("%s-sv-create" % tag, {"prefix": SV + "create", "vol_name": V, "sub_name": "lim", "group_name": G},
        expect=-errno.EACCES, cl=c)
    mon("%s-sv-create-via-mon" % tag, {"prefix": SV + "create", "vol_name": V, "sub_name": "lim",
                                       "group_name": G}, expect=-errno.EACCES, cl=c)
    mgr("%s-sv-ls" % tag, {"prefix": SV + "ls", "vol_name": V, "group_name": G, "format": "json"},
        "read-only volumes command", expect=None, cl=c)
    mgr("%s-sv-getpath" % tag, {"prefix": SV + "getpath", "vol_name": V, "sub_name": "sv-plain",
                                "group_name": G}, expect=None, cl=c)
    mon("%s-auth-goc" % tag, {"prefix": "auth get-or-create", "entity": "client.x", "caps": ["mon", "allow r"],
                              "format": "json"}, expect=-errno.EACCES, cl=c)
    mon("%s-auth-get-self" % tag, {"prefix": "auth get", "entity": CLNAMES[id(c)], "format": "json"},
        expect=None, cl=c)
    mon("%s-auth-ls" % tag, {"prefix": "auth ls", "format": "json"}, expect=-errno.EACCES, cl=c)
    mon("%s-fs-ls" % tag, {"prefix": "fs ls", "format": "json"}, expect=0, cl=c)
    mon("%s-fs-dump" % tag, {"prefix": "fs dump", "format": "json"}, expect=0, cl=c)
    mon("%s-config-set" % tag, {"prefix": "config set", "who": "mgr", "name": "mgr/volumes/max_concurrent_clones",
                                "value": "2"}, expect=-errno.EACCES, cl=c)
    mon("%s-unknown-prefix" % tag, {"prefix": "fs frobnicate"}, "EACCES or EINVAL first?", expect=None, cl=c)
for c in LIMS:
    try:
        c.shutdown()
    except Exception:
        pass

# =================================================================== L. RADOS omap
section("L. RADOS omap (python binding)")
IO = None
try:
    IO = CL.open_ioctx(META_POOL)
    IO.set_namespace("csi")
except Exception as e:
    save("rados-open-ioctx", {"target": "rados-py", "ret": None, "exception": repr(e)}, "open_ioctx")

OBJ = "csi.volumes.golden"


def write_op(fn, obj=OBJ, flags=0):
    with rados.WriteOpCtx() as op:
        fn(op)
        IO.operate_write_op(op, obj, flags=flags)


def read_op(fn, obj=OBJ):
    with rados.ReadOpCtx() as op:
        it, ret = fn(op)
        IO.operate_read_op(op, obj)
        return {"ret": ret, "items": [(k, v) for k, v in it]}


if IO is not None:
    py_case("omap-create-exclusive", "WriteOpCtx.new(LIBRADOS_CREATE_EXCLUSIVE) %s" % OBJ,
            lambda: write_op(lambda op: op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)), expect=0)
    py_case("omap-create-exclusive-again", "same exclusive create again",
            lambda: write_op(lambda op: op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)), expect=-errno.EEXIST)
    py_case("omap-create-idempotent", "WriteOpCtx.new(LIBRADOS_CREATE_IDEMPOTENT) on existing",
            lambda: write_op(lambda op: op.new(rados.LIBRADOS_CREATE_IDEMPOTENT)), expect=0)
    py_case("omap-write-full", "ioctx.write_full(obj, b'data')", lambda: IO.write_full(OBJ, b"data"), expect=0)
    py_case("omap-stat", "ioctx.stat(obj)", lambda: IO.stat(OBJ), expect=0)
    py_case("omap-set", "set_omap csi.volume.pvc-a=uuid-a, csi.volume.pvc-b=uuid-b, other.key=x",
            lambda: write_op(lambda op: IO.set_omap(op, ("csi.volume.pvc-a", "csi.volume.pvc-b", "other.key"),
                                                    (b"uuid-a", b"uuid-b", b"x"))), expect=0)
    py_case("omap-set-overwrite", "set_omap csi.volume.pvc-a=uuid-a2",
            lambda: write_op(lambda op: IO.set_omap(op, ("csi.volume.pvc-a",), (b"uuid-a2",))), expect=0)
    py_case("omap-get-by-keys", "get_omap_vals_by_keys [pvc-a, pvc-missing]",
            lambda: read_op(lambda op: IO.get_omap_vals_by_keys(op, ("csi.volume.pvc-a", "csi.volume.missing"))),
            "missing keys are simply absent", expect=0)
    py_case("omap-get-by-keys-all-missing", "get_omap_vals_by_keys [missing only]",
            lambda: read_op(lambda op: IO.get_omap_vals_by_keys(op, ("nokey",))), expect=0)
    py_case("omap-get-vals-all", "get_omap_vals(start_after='', filter_prefix='', max_return=100)",
            lambda: read_op(lambda op: IO.get_omap_vals(op, "", "", 100)), expect=0)
    py_case("omap-get-vals-start-after", "get_omap_vals(start_after='csi.volume.pvc-a', '', 100)",
            lambda: read_op(lambda op: IO.get_omap_vals(op, "csi.volume.pvc-a", "", 100)), expect=0)
    py_case("omap-get-vals-prefix", "get_omap_vals('', filter_prefix='csi.', 100)",
            lambda: read_op(lambda op: IO.get_omap_vals(op, "", "csi.", 100)), expect=0)
    py_case("omap-get-vals-max1", "get_omap_vals('', '', max_return=1)",
            lambda: read_op(lambda op: IO.get_omap_vals(op, "", "", 1)), "ret tells 'more'?", expect=0)
    py_case("omap-get-keys", "get_omap_keys('', 100)",
            lambda: read_op(lambda op: IO.get_omap_keys(op, "", 100)), expect=0)
    py_case("omap-remove-keys", "remove_omap_keys [other.key, not-there]",
            lambda: write_op(lambda op: IO.remove_omap_keys(op, ("other.key", "not-there"))),
            "a missing key is not an error?", expect=0)
    py_case("omap-get-vals-after-remove", "get_omap_vals all",
            lambda: read_op(lambda op: IO.get_omap_vals(op, "", "", 100)), expect=0)
    py_case("omap-get-vals-missing-object", "get_omap_vals on a missing object",
            lambda: read_op(lambda op: IO.get_omap_vals(op, "", "", 100), obj="csi.nosuchobj"),
            expect=-errno.ENOENT)
    py_case("omap-get-by-keys-missing-object", "get_omap_vals_by_keys on a missing object",
            lambda: read_op(lambda op: IO.get_omap_vals_by_keys(op, ("k",)), obj="csi.nosuchobj"),
            expect=-errno.ENOENT)
    py_case("omap-remove-keys-missing-object", "remove_omap_keys on a missing object",
            lambda: write_op(lambda op: IO.remove_omap_keys(op, ("k",)), obj="csi.nosuchobj"),
            expect=-errno.ENOENT)
    py_case("omap-set-missing-object", "set_omap on a missing object (creates it?)",
            lambda: write_op(lambda op: IO.set_omap(op, ("k",), (b"v",)), obj="csi.implicit"), expect=0)
    py_case("omap-stat-implicit", "stat the implicitly created object", lambda: IO.stat("csi.implicit"), expect=0)
    py_case("omap-create-exclusive-plus-set", "one op: new(EXCLUSIVE)+set_omap on a new object",
            lambda: write_op(lambda op: (op.new(rados.LIBRADOS_CREATE_EXCLUSIVE),
                                         IO.set_omap(op, ("csi.volname",), (b"pvc-x",))), obj="csi.volume.u1"),
            expect=0)
    py_case("omap-create-exclusive-plus-set-again", "same op again: EEXIST and omap untouched?",
            lambda: write_op(lambda op: (op.new(rados.LIBRADOS_CREATE_EXCLUSIVE),
                                         IO.set_omap(op, ("csi.volname",), (b"pvc-CHANGED",))),
                             obj="csi.volume.u1"), expect=-errno.EEXIST)
    py_case("omap-get-after-failed-op", "get_omap_vals_by_keys csi.volname",
            lambda: read_op(lambda op: IO.get_omap_vals_by_keys(op, ("csi.volname",)), obj="csi.volume.u1"),
            "value must still be pvc-x (op is atomic)", expect=0)
    py_case("omap-binary-value", "set_omap with a non-utf8 value and read back",
            lambda: (write_op(lambda op: IO.set_omap(op, ("bin",), (b"\xff\x00\x01",)), obj="csi.volume.u1"),
                     read_op(lambda op: IO.get_omap_vals_by_keys(op, ("bin",)), obj="csi.volume.u1"))[1],
            expect=0)
    py_case("omap-list-objects-ns", "ioctx.list_objects() in ns csi",
            lambda: sorted(o.key for o in IO.list_objects()), expect=0)
    py_case("omap-remove-object", "ioctx.remove_object(obj)", lambda: IO.remove_object(OBJ), expect=0)
    py_case("omap-remove-object-again", "ioctx.remove_object(obj) again", lambda: IO.remove_object(OBJ),
            expect=-errno.ENOENT)
    py_case("omap-stat-missing", "ioctx.stat(missing)", lambda: IO.stat(OBJ), expect=-errno.ENOENT)
    py_case("omap-read-missing", "ioctx.read(missing)", lambda: IO.read(OBJ), expect=-errno.ENOENT)
    py_case("omap-other-namespace", "get_omap_vals of csi.volume.u1 in the default namespace",
            lambda: (IO.set_namespace(""), read_op(lambda op: IO.get_omap_vals(op, "", "", 10),
                                                   obj="csi.volume.u1"))[1], expect=-errno.ENOENT)
    IO.set_namespace("csi")
    for o in ("csi.implicit", "csi.volume.u1"):
        try:
            IO.remove_object(o)
        except Exception:
            pass

section("L2. rados CLI")
RADOS = ["rados", "-c", CONF, "-k", KEYRING, "-p", META_POOL, "-N", "csi"]
CO = "csi.cli.golden"
shell_case("rados-cli-create", RADOS + ["create", CO], target="rados-cli", expect=0)
shell_case("rados-cli-create-again", RADOS + ["create", CO], target="rados-cli", expect="nonzero")
shell_case("rados-cli-setomapval", RADOS + ["setomapval", CO, "csi.volume.pvc-a", "uuid-a"], target="rados-cli",
           expect=0)
shell_case("rados-cli-setomapval-2", RADOS + ["setomapval", CO, "csi.volume.pvc-b", "uuid-b"], target="rados-cli",
           expect=0)
shell_case("rados-cli-getomapval", RADOS + ["getomapval", CO, "csi.volume.pvc-a"], target="rados-cli", expect=0)
shell_case("rados-cli-getomapval-to-file", RADOS + ["getomapval", CO, "csi.volume.pvc-a", "/dev/stdout"],
           "value written raw to the out file", target="rados-cli", expect=0)
shell_case("rados-cli-getomapval-missing-key", RADOS + ["getomapval", CO, "nokey"], target="rados-cli",
           expect=None)
shell_case("rados-cli-getomapval-missing-object", RADOS + ["getomapval", "csi.nosuchobj", "k"],
           target="rados-cli", expect="nonzero")
shell_case("rados-cli-listomapvals", RADOS + ["listomapvals", CO], target="rados-cli", expect=0)
shell_case("rados-cli-listomapkeys", RADOS + ["listomapkeys", CO], target="rados-cli", expect=0)
shell_case("rados-cli-listomapkeys-missing-object", RADOS + ["listomapkeys", "csi.nosuchobj"],
           target="rados-cli", expect="nonzero")
shell_case("rados-cli-rmomapkey", RADOS + ["rmomapkey", CO, "csi.volume.pvc-b"], target="rados-cli", expect=0)
shell_case("rados-cli-rmomapkey-missing", RADOS + ["rmomapkey", CO, "nokey"], target="rados-cli", expect=None)
shell_case("rados-cli-rmomapkey-missing-object", RADOS + ["rmomapkey", "csi.nosuchobj", "k"],
           target="rados-cli", expect=None)
shell_case("rados-cli-ls", RADOS + ["ls"], target="rados-cli", expect=0)
shell_case("rados-cli-ls-all-ns", ["rados", "-c", CONF, "-k", KEYRING, "-p", META_POOL, "--all", "ls"],
           "all namespaces (ns<TAB>name)", target="rados-cli", expect=0)
shell_case("rados-cli-stat", RADOS + ["stat", CO], target="rados-cli", expect=0)
shell_case("rados-cli-rm", RADOS + ["rm", CO], target="rados-cli", expect=0)
shell_case("rados-cli-rm-again", RADOS + ["rm", CO], target="rados-cli", expect="nonzero")
shell_case("rados-cli-stat-missing", RADOS + ["stat", CO], target="rados-cli", expect="nonzero")
shell_case("rados-cli-missing-pool", ["rados", "-c", CONF, "-k", KEYRING, "-p", "nopool", "ls"],
           target="rados-cli", expect="nonzero")

# =================================================================== M. MDS sessions, fuse
section("M. MDS sessions, ceph-fuse")
svc("sv-create-mnt", "sv-mnt", size=64 * MIB, format="json")
P_MNT = getpath("sv-mnt")
vol1_key = get_or_create_key("client.vol1", ["mds", "allow rw path=%s" % P_MNT, "mon", "allow r",
                                             "osd", "allow rw pool=%s" % DATA_POOL])
VOL1_KR = write_keyring("client.vol1", vol1_key)
mon("auth-get-vol1", {"prefix": "auth get", "entity": "client.vol1", "format": "json"})
VOL1_MNT = os.path.join(MNT, "vol1")
r = ceph_fuse(VOL1_MNT, "client.vol1", VOL1_KR, root=P_MNT)
save("fuse-mount-vol1", dict({"target": "shell", "mounted": is_mounted(VOL1_MNT)}, **r),
     "ceph-fuse -n client.vol1 -r <subvol path>", expect=0)
vol1_ok = is_mounted(VOL1_MNT)
if vol1_ok:
    try:
        with open(os.path.join(VOL1_MNT, "hello.txt"), "wb") as f:
            f.write(os.urandom(MIB))
            f.flush()
            os.fsync(f.fileno())
    except Exception as e:
        print("write failed", e)
shell_case("fuse-stat-f", ["stat", "-f", VOL1_MNT], "statfs of a 64 MiB-quota subvolume", expect=0)
shell_case("fuse-df", ["df", "-B1", VOL1_MNT], expect=0)
shell_case("fuse-df-inodes", ["df", "-i", VOL1_MNT], expect=0)
for _x in ("ceph.quota.max_bytes", "ceph.dir.rbytes", "ceph.dir.rfiles", "ceph.dir.subvolume"):
    py_case("fuse-getxattr-%s" % _x.replace("ceph.", "").replace(".", "-"), "os.getxattr(<vol1 mount>, %r)" % _x,
            lambda: os.getxattr(VOL1_MNT, _x), target="fs", expect=None)
mds("mds-session-ls", {"prefix": "session ls", "format": "json"}, expect=0)
mds("mds-client-ls", {"prefix": "client ls", "format": "json"}, expect=0)
mds("mds-session-ls-plain", {"prefix": "session ls"}, "no format key", expect=0)
mds("mds-session-ls-rank0", {"prefix": "session ls", "format": "json"}, "spec '0'", spec="0", expect=0)
mds("mds-session-ls-fs-rank", {"prefix": "session ls", "format": "json"}, "spec 'cephfs:0'", spec="cephfs:0",
    expect=0)
vid = None
try:
    for s_ in json.loads(call("mds", {"prefix": "session ls", "format": "json"})["outb"]):
        if s_.get("client_metadata", {}).get("entity_id") == "vol1":
            vid = s_["id"]
except Exception as e:
    print("no vol1 session", e)
mds("mds-session-ls-filter-id", {"prefix": "session ls", "filters": ["id=%s" % vid], "format": "json"}, expect=0)
mds("mds-session-ls-filter-auth-name", {"prefix": "session ls", "filters": ["auth_name=vol1"], "format": "json"},
    expect=0)
mds("mds-session-ls-filter-root", {"prefix": "session ls", "filters": ["client_metadata.root=%s" % P_MNT],
                                   "format": "json"}, expect=0)
mds("mds-session-ls-filter-two", {"prefix": "session ls", "filters": ["auth_name=vol1",
                                                                      "client_metadata.root=%s" % P_MNT],
                                  "format": "json"}, "two filters (AND)", expect=0)
mds("mds-session-ls-filter-nomatch", {"prefix": "session ls", "filters": ["id=999999"], "format": "json"},
    expect=0)
mds("mds-session-ls-filter-bad", {"prefix": "session ls", "filters": ["bogus"], "format": "json"}, expect=None)
mds("mds-session-ls-filter-unknown-key", {"prefix": "session ls", "filters": ["foo=bar"], "format": "json"},
    expect=None)
mds("mds-perf-dump", {"prefix": "perf dump", "format": "json"}, expect=0)
mds("mds-perf-dump-mds-server", {"prefix": "perf dump", "logger": "mds_server", "format": "json"}, expect=0)
mds("mds-perf-dump-counter", {"prefix": "perf dump", "logger": "mds_server", "counter": "handle_client_request",
                              "format": "json"}, expect=0)
mds("mds-perf-schema", {"prefix": "perf schema", "format": "json"}, "whole schema", expect=0)
mds("mds-status", {"prefix": "status", "format": "json"}, expect=0)
mds("mds-status-spec-missing", {"prefix": "status", "format": "json"}, "unknown daemon name", spec="zz",
    expect=None, timeout=20)
mds("mds-unknown-command", {"prefix": "frobnicate"}, expect=-errno.EINVAL)
# same user, root '/'
ROOT_MNT = os.path.join(MNT, "vol1root")
r = ceph_fuse(ROOT_MNT, "client.vol1", VOL1_KR, root="/")
save("fuse-mount-vol1-root-denied", dict({"target": "shell", "mounted": is_mounted(ROOT_MNT)}, **r),
     "restricted user mounting '/': expected non-allowable root", expect="nonzero")
if is_mounted(ROOT_MNT):
    umount(ROOT_MNT)
r = ceph_fuse(os.path.join(MNT, "vol1other"), "client.vol1", VOL1_KR, root=getpath("sv-plain"))
save("fuse-mount-vol1-other-subvolume-denied", dict({"target": "shell"}, **r),
     "restricted user mounting another subvolume", expect="nonzero")
if is_mounted(os.path.join(MNT, "vol1other")):
    umount(os.path.join(MNT, "vol1other"))
r = ceph_fuse(os.path.join(MNT, "badkey"), "client.vol1", write_keyring("client.vol1",
                                                                         "AQ" + "A" * 36 + "=="), root=P_MNT)
save("fuse-mount-bad-key", dict({"target": "shell"}, **r), "wrong secret", expect="nonzero")
# write past quota
quota_res = {"target": "fs"}
if vol1_ok:
    written = 0
    t0 = time.monotonic()
    try:
        with open(os.path.join(VOL1_MNT, "fill.bin"), "wb") as f:
            chunk = os.urandom(MIB)
            while written < 256 * MIB:
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                written += MIB
        quota_res.update({"ret": 0, "written": written})
    except OSError as e:
        quota_res.update({"ret": -e.errno, "errno": e.errno, "errno_name": errno.errorcode.get(e.errno),
                          "strerror": e.strerror, "written_before_error": written})
    quota_res["elapsed_ms"] = round((time.monotonic() - t0) * 1000, 1)
    # one more small append after the error
    try:
        with open(os.path.join(VOL1_MNT, "small.txt"), "a") as f:
            f.write("x\n")
        quota_res["append_after"] = "ok"
    except OSError as e:
        quota_res["append_after"] = {"errno": e.errno, "strerror": e.strerror}
save("fuse-write-past-quota", quota_res, "write 1 MiB chunks + fsync into a 64 MiB quota",
     expect=-errno.EDQUOT)
shell_case("fuse-df-after-fill", ["df", "-B1", VOL1_MNT], expect=0)
shell_case("fuse-stat-f-after-fill", ["stat", "-f", VOL1_MNT], expect=0)
svinfo("sv-info-mnt-after-fill", "sv-mnt", "bytes_used of the filled subvolume", expect=0)
resize("sv-resize-mounted-grow", "sv-mnt", str(128 * MIB), "live resize of a mounted subvolume")
time.sleep(2)
shell_case("fuse-df-after-resize", ["df", "-B1", VOL1_MNT], "2 s after resize to 128 MiB", expect=0)
mds("mds-perf-dump-mds-sessions", {"prefix": "perf dump", "logger": "mds_sessions", "format": "json"}, expect=0)
# evict
if vid is not None:
    mds("mds-client-evict", {"prefix": "client evict", "filters": ["id=%s" % vid]}, expect=0)
    time.sleep(2)
    shell_case("fuse-ls-after-evict", ["ls", "-la", VOL1_MNT], "ls in the evicted mount", timeout=20, expect=None)
    shell_case("fuse-stat-after-evict", ["stat", os.path.join(VOL1_MNT, "hello.txt")], timeout=20, expect=None)
    shell_case("fuse-stat-f-after-evict", ["stat", "-f", VOL1_MNT], timeout=20, expect=None)
    shell_case("fuse-write-after-evict", ["sh", "-c", "echo x >> %s/after-evict.txt" % VOL1_MNT], timeout=20,
               expect=None)
    mds("mds-session-ls-after-evict", {"prefix": "session ls", "format": "json"}, expect=0)
    mds("mds-client-evict-missing", {"prefix": "client evict", "filters": ["id=%s" % vid]}, "evict again",
        expect=None)
    mds("mds-client-evict-no-filter-match", {"prefix": "client evict", "filters": ["id=999999"]}, expect=None)
    mds("mds-session-evict-alias-bad", {"prefix": "session evict", "filters": ["bogus"]}, expect=None)
mon("osd-blocklist-ls", {"prefix": "osd blocklist ls", "format": "json"}, expect=0)
mon("osd-blocklist-ls-plain", {"prefix": "osd blocklist ls"}, expect=0)
mon("osd-blacklist-ls-old-name", {"prefix": "osd blacklist ls", "format": "json"}, "pre-Pacific name", expect=None)
r = umount(VOL1_MNT)
save("fuse-umount-evicted", dict({"target": "shell", "mounted_after": is_mounted(VOL1_MNT)}, **r),
     "umount of the evicted mount", expect=0)

# subvolume evict through the volumes module, with a live mount
try:
    rec = call("mgr", {"prefix": SV + "authorize", "vol_name": V, "sub_name": "sv-mnt", "group_name": G,
                       "auth_id": "evictme", "tenant_id": "t9", "access_level": "rw"})
    save("authz-for-mount", rec, "fs subvolume authorize evictme on sv-mnt (tenant t9)")
    _r, _b, _s = quiet("mon", {"prefix": "auth get", "entity": "client.evictme", "format": "json"})
    ev_key = json.loads(_b)[0]["key"]  # the key the module created
    ev_kr = write_keyring("client.evictme", ev_key)
    EV_MNT = os.path.join(MNT, "evictme")
    r = ceph_fuse(EV_MNT, "client.evictme", ev_kr, root=P_MNT)
    save("fuse-mount-authorized-id", dict({"target": "shell", "mounted": is_mounted(EV_MNT)}, **r),
         "mount with the key made by fs subvolume authorize", expect=0)
    auth_("authz-evict-live", "evict", "evictme", "one live mount", sub="sv-mnt")
    mds("mds-session-ls-after-subvolume-evict", {"prefix": "session ls", "filters": ["auth_name=evictme"],
                                                 "format": "json"}, expect=0)
    if is_mounted(EV_MNT):
        umount(EV_MNT)
except Exception as e:
    print("evictme part failed", e)

# =================================================================== N. timings
section("N. timings")
TIMINGS = {}
c_times, r_times = [], []
for i in range(20):
    t0 = time.monotonic()
    rr = call("mgr", {"prefix": SV + "create", "vol_name": V, "sub_name": "t-%02d" % i, "group_name": G,
                      "size": GIB})
    c_times.append(time.monotonic() - t0)
    if rr.get("ret") != 0:
        print("timing create failed", rr)
for i in range(20):
    t0 = time.monotonic()
    rr = call("mgr", {"prefix": SV + "rm", "vol_name": V, "sub_name": "t-%02d" % i, "group_name": G})
    r_times.append(time.monotonic() - t0)
    if rr.get("ret") != 0:
        print("timing rm failed", rr)
TIMINGS["subvolume create x20 (mgr_command)"] = c_times
TIMINGS["subvolume rm x20 (mgr_command)"] = r_times
m_times, u_times, mu_times = [], [], []
T_MNT = os.path.join(MNT, "timing")
for i in range(10):
    t0 = time.monotonic()
    rr = ceph_fuse(T_MNT, "client.vol1", VOL1_KR, root=P_MNT)
    try:
        os.stat(T_MNT)
    except OSError as e:
        print("timing stat failed", e)
    t1 = time.monotonic()
    ok = is_mounted(T_MNT)
    uu = umount(T_MNT)
    t2 = time.monotonic()
    if not ok:
        print("timing mount failed", rr)
    m_times.append(t1 - t0)
    u_times.append(t2 - t1)
    mu_times.append(t2 - t0)
TIMINGS["ceph-fuse mount + first stat x10"] = m_times
TIMINGS["umount x10"] = u_times
TIMINGS["ceph-fuse mount + stat + umount cycle x10"] = mu_times
timing_rec = {"target": "timing"}
for k, v in TIMINGS.items():
    timing_rec[k] = {"median_ms": round(statistics.median(v) * 1000, 1), "max_ms": round(max(v) * 1000, 1),
                     "min_ms": round(min(v) * 1000, 1), "all_ms": [round(x * 1000, 1) for x in v]}
save("timings", timing_rec, "wall times")

# =================================================================== O. odd names
section("O. odd subvolume / group / snapshot names")
# Order matters: a subvolume named '', '.' or '..' resolves to the group dir or /volumes itself and
# marks it as a subvolume (ceph.dir.subvolume), after which every later create below it fails
# with EINVAL "invalid value specified for ceph.dir.subvolume". So those two go last, each in
# its own group.
for slug, name in (("unicode", "grp-日本"), ("empty", ""), ("slash", "a/b"), ("long300", "z" * 300)):
    rec = mgr("sg-name-%s" % slug, {"prefix": SG + "create", "vol_name": V, "group_name": name},
              "group name %r" % name[:40], expect=None)
    if rec.get("ret") == 0:
        mgr("sg-name-%s-getpath" % slug, {"prefix": SG + "getpath", "vol_name": V, "group_name": name},
            expect=None)
        mgr("sg-name-%s-rm" % slug, {"prefix": SG + "rm", "vol_name": V, "group_name": name}, expect=None)
quiet("mgr", {"prefix": SG + "create", "vol_name": V, "group_name": "gnames"})


def odd_name(slug, name, group):
    rec = svc("sv-name-%s" % slug, name, "name %r (len %d), group %s" % (name[:60], len(name), group),
              group=group, expect=None)
    if rec.get("ret") == 0:
        mgr("sv-name-%s-getpath" % slug, {"prefix": SV + "getpath", "vol_name": V, "sub_name": name,
                                           "group_name": group}, expect=None)
        mgr("sv-name-%s-rm" % slug, {"prefix": SV + "rm", "vol_name": V, "sub_name": name,
                                      "group_name": group}, expect=None)


for slug, name in (("unicode", "vol-ünïcödé-日本"), ("space", "with space"),
                   ("leading-dash", "-dash"), ("underscore-nogroup", "_nogroup"), ("newline", "a\nb"),
                   ("long255", "y" * 255), ("long200", "w" * 200), ("long300", "x" * 300), ("slash", "a/b")):
    odd_name(slug, name, "gnames")
mgr("sv-ls-gnames", {"prefix": SV + "ls", "vol_name": V, "group_name": "gnames", "format": "json"},
    "leftovers of failed creates?", expect=None)
snap("snap-name-slash", "create", "sv-plain", "a/b", expect=None)
snap("snap-name-long300", "create", "sv-plain", "s" * 300, expect=None)
snap("snap-name-empty", "create", "sv-plain", "", expect=None)
snap("snap-name-dot", "create", "sv-plain", ".", expect=None)
snap("snap-name-unicode", "create", "sv-plain", "snap-日本", expect=None)
mgr("snap-ls-odd-names", {"prefix": SN + "ls", "vol_name": V, "sub_name": "sv-plain", "group_name": G,
                          "format": "json"}, expect=None)
# the three that resolve to their parent directory: last, in their own groups.
# '' resolves to the group dir itself (getpath '/volumes/<group>/'); its rm trashes the whole group.
quiet("mgr", {"prefix": SG + "create", "vol_name": V, "group_name": "gempty"})
svc("sv-create-in-gempty", "inside", "a normal subvolume in gempty, before the '' case", group="gempty")
odd_name("empty", "", "gempty")
mgr("sg-ls-after-empty-name-rm", {"prefix": SG + "ls", "vol_name": V, "format": "json"},
    "is gempty still there?", expect=None)
mgr("sv-info-in-gempty-after-empty-name-rm", {"prefix": SV + "info", "vol_name": V, "sub_name": "inside",
                                              "group_name": "gempty", "format": "json"}, expect=None)
quiet("mgr", {"prefix": SG + "create", "vol_name": V, "group_name": "gdot"})
quiet("mgr", {"prefix": SG + "create", "vol_name": V, "group_name": "gdotdot"})
odd_name("dot", ".", "gdot")
svc("sv-create-in-group-after-dot", "after-dot", "normal create in gdot after the '.' case", group="gdot",
    expect=None)
odd_name("dotdot", "..", "gdotdot")
svc("sv-create-in-csi-after-dotdot", "after-dotdot", "normal create in csi after the '..' case", expect=None)
rec = mgr("sg-name-dotdot", {"prefix": SG + "create", "vol_name": V, "group_name": ".."}, "group name '..'",
          expect=None)
if rec.get("ret") == 0:
    mgr("sg-name-dotdot-getpath", {"prefix": SG + "getpath", "vol_name": V, "group_name": ".."}, expect=None)
    mgr("sg-name-dotdot-rm", {"prefix": SG + "rm", "vol_name": V, "group_name": ".."}, expect=None)
mgr("sg-ls-final", {"prefix": SG + "ls", "vol_name": V, "format": "json"}, expect=0)
mon("health-detail-final", {"prefix": "health", "detail": "detail", "format": "json"},
    "health after all of the above", expect=0)

# =================================================================== teardown
for mp in list(MOUNTS):
    umount(mp)
for mp in os.listdir(MNT):
    p = os.path.join(MNT, mp)
    if is_mounted(p):
        umount(p)
time.sleep(3)
for mp in os.listdir(MNT):  # ceph-fuse processes we started that did not exit after umount
    for pid in fuse_pids(os.path.join(MNT, mp)):
        print("ceph-fuse pid %d for %s still running: SIGTERM" % (pid, mp))
        try:
            os.kill(pid, 15)
        except OSError:
            pass
for f in TMPFILES:
    try:
        os.unlink(f)
    except OSError:
        pass

# =================================================================== P. inputs that kill the mon (LAST)
section("P. malformed command JSON sent to the mon (last: one of these aborts ceph-mon 16.2.15)")


def mon_pid_alive():
    try:
        pid = int(open(os.path.join(BASE, "run", "mon.a.pid")).read().strip())
        os.kill(pid, 0)
        return True
    except Exception:
        return False


if os.environ.get("GOLDEN_SKIP_MON_CRASH"):
    print("skipping mon-crash cases (GOLDEN_SKIP_MON_CRASH set)")
else:
    for slug, raw, cmd in (("err-json-array-mon", '["fs ls"]', None), ("err-prefix-not-string-mon", None, {"prefix": 5})):
        rec = mon(slug, cmd, "sent as the last case(s): the mon may abort on it", raw=raw, expect=-errno.EINVAL,
                  timeout=20)
        time.sleep(2)
        alive = mon_pid_alive()
        ok = call("mon", {"prefix": "fsid", "format": "json"}, timeout=15)
        save(slug + "-mon-alive-after", {"target": "check", "ret": ok.get("ret"), "mon_pid_alive": alive,
                                         "fsid_exception": ok.get("exception")},
             "is ceph-mon still alive after %s?" % slug, "mon alive: %s, fsid ret %s" % (alive, ok.get("ret")),
             expect=0 if alive else None)
        if not alive:
            SURPRISES.append("%s: ceph-mon ABORTED (uncaught exception in cmd_getval<std::string> from "
                             "Monitor::handle_command); see log/mon.a.log" % slug)
            break


# =================================================================== versions + summary
def cmd_out(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except Exception as e:
        return repr(e)


with open(os.path.join(OUT, "versions.txt"), "w") as f:
    f.write("$ ceph --version\n" + cmd_out(["ceph", "--version"]))
    f.write("\n$ ceph-fuse --version\n" + cmd_out(["ceph-fuse", "--version"]))
    f.write("\n$ dpkg-query -W (ceph packages)\n")
    f.write(cmd_out(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}${Package}\t${Version}\n", "ceph*", "python3-ceph*",
                     "python3-rados", "python3-cephfs", "librados2", "libcephfs2", "libfuse2*"]))
    f.write("\n$ cat /etc/debian_version\n" + cmd_out(["cat", "/etc/debian_version"]))
    f.write("\n$ uname -r\n" + cmd_out(["uname", "-r"]))
    f.write("\nmds commands sent via: %s\n" % MDS_VIA)


def md_cell(s, n=160):
    s = str(s).replace("\n", "\\n").replace("|", "\\|")
    return s if len(s) <= n else s[:n] + "…"


key_facts = {}
for k, v in SEEN_KEYS.items():
    sig = json.dumps(v, sort_keys=True)
    key_facts[sig] = key_facts.get(sig, 0) + 1
HERE = os.path.dirname(os.path.abspath(__file__))
NOTES_FILE = os.path.join(HERE, "real-pacific-notes.md")
with open(os.path.join(OUT, "summary.md"), "w") as f:
    f.write("# Golden samples from a real Ceph Pacific cluster\n\n")
    f.write("Captured %s by `capture.py` (%s s). One JSON file per case: `target` (mon|mgr|mds|rados-py|"
            "rados-cli|shell|fs|timing), `cmd`, `ret`, `outs`, `outb` (utf-8), `outb_json` (when outb parses). "
            "MDS commands were sent with %s. Values are raw (compare shapes/keys/types); cephx keys are "
            "replaced by `%s`.\n\n" % (time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                                        round(time.time() - T_START), MDS_VIA, REDACTED))
    f.write("## cephx keys seen (before redaction)\n\n%d distinct keys; facts (count × facts):\n\n" % len(SEEN_KEYS))
    for sig, n in key_facts.items():
        f.write("- %d × `%s`\n" % (n, sig))
    f.write("\n(len = base64 length; decoded_len = bytes; type 1 = AES; secret_len = 16.)\n\n")
    f.write("## Timings\n\n| what | median ms | max ms | min ms |\n|---|---|---|---|\n")
    for k, v in timing_rec.items():
        if isinstance(v, dict):
            f.write("| %s | %s | %s | %s |\n" % (k, v["median_ms"], v["max_ms"], v["min_ms"]))
    f.write("\n## Unexpected results (vs. what the script expected)\n\n")
    for s in SURPRISES:
        f.write("- %s\n" % md_cell(s, 300))
    if not SURPRISES:
        f.write("(none)\n")
    if os.path.exists(NOTES_FILE):
        f.write("\n" + open(NOTES_FILE).read() + "\n")
    f.write("\n## Cases\n")
    for row in ROWS:
        if row[0] == "##":
            f.write("\n### %s\n\n| file | target | cmd | ret | outs / stderr | note |\n|---|---|---|---|---|---|\n"
                    % row[1])
            continue
        fname, target, brief, ret, outs, note, surprise = row
        f.write("| %s | %s | %s | %s | %s | %s%s |\n" % (fname, target, md_cell(brief, 140), ret, md_cell(outs),
                                                         md_cell(note, 120),
                                                         (" **UNEXPECTED: %s**" % surprise) if surprise else ""))

# final secret check
leaks = []
for fn in os.listdir(OUT):
    with open(os.path.join(OUT, fn), encoding="utf-8", errors="replace") as fh:
        txt = fh.read()
    if KEY_RE.search(txt) or any(k in txt for k in SEEN_KEYS):
        leaks.append(fn)
print("key leak check:", "LEAKS in %s" % leaks if leaks else "ok")
print("done: %d cases, %d unexpected, %.0f s" % (len(ROWS), len(SURPRISES), time.time() - T_START))
sys.stdout.flush()
# shutting down librados/libcephfs can hang when the mon is gone: do it with a deadline, then exit
_sd = concurrent.futures.ThreadPoolExecutor(max_workers=1)
_f = _sd.submit(lambda: (FS.shutdown() if FS is not None else None, CL.shutdown()))
try:
    _f.result(timeout=15)
except Exception:
    pass
os._exit(0)
