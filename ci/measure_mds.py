#!/usr/bin/python3
"""Helper of ci/measure-mds.sh: samples a real Ceph MDS and its ceph-fuse clients through
their admin sockets, and turns the samples into Markdown. Standard library only.

  measure_mds.py sample OUTDIR LABEL --mds-asok A --mds-pid P --mnt-prefix DIR
  measure_mds.py note OUTDIR KEY VALUE            (VALUE is parsed as JSON when it can be)
  measure_mds.py client-config OUTDIR --mnt-prefix DIR --mds-asok A
  measure_mds.py ours [--others] --mds-asok A --mnt-prefix DIR   (count of sessions)
  measure_mds.py asok-get ASOK KEY...  |  asok ASOK PREFIX  |  notes-append OUTDIR TEXT
  measure_mds.py mkfiles ROOT DIRS FILES BYTES   (the synthetic tree for the untar)
  measure_mds.py report OUTDIR                    (Markdown on stdout)

A sample is OUTDIR/samples/LABEL.json. Admin sockets only: reading them sends nothing
to the MDS, so the sampling itself adds no MDS request or session.
"""
import glob
import json
import os
import socket
import statistics
import struct
import sys
import time


# --- admin socket -----------------------------------------------------------------------

def _recvall(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("admin socket closed early")
        buf += chunk
    return buf


def asok(path, prefix, **args):
    """One admin socket command (what `ceph daemon` / `ceph --admin-daemon` sends)."""
    cmd = dict(prefix=prefix, format="json", **args)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(json.dumps(cmd).encode() + b"\0")
        n = struct.unpack(">I", _recvall(s, 4))[0]
        data = _recvall(s, n)
    return json.loads(data) if data.strip() else None


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fuse_clients(prefix):
    """{pid: mountpoint} of the ceph-fuse processes whose argv has a path under prefix."""
    out = {}
    for p in glob.glob("/proc/[0-9]*"):
        try:
            with open(p + "/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if not argv or not argv[0].endswith("ceph-fuse"):
            continue
        mps = [a for a in argv[1:] if a.startswith(prefix.rstrip("/") + "/")]
        if mps:
            out[int(p[6:])] = mps[-1]
    return out


def client_asok(mds_asok, pid):
    """The conf of ci/ceph-cluster.sh puts client sockets at run_dir/$name.$pid.asok."""
    hits = glob.glob(os.path.join(os.path.dirname(mds_asok), f"client.*.{pid}.asok"))
    return hits[0] if hits else None


def msgr_sum(perf, key):
    return sum(v.get(key, 0) for k, v in perf.items() if k.startswith("AsyncMessenger::Worker"))


def cmd_sample(outdir, label, mds_asok, mds_pid, prefix):
    os.makedirs(os.path.join(outdir, "samples"), exist_ok=True)
    t0 = time.time()
    mono = time.monotonic()
    perf = asok(mds_asok, "perf dump")
    sessions = asok(mds_asok, "session ls")
    cache = asok(mds_asok, "cache status")
    clients = {}
    for pid, mp in sorted(fuse_clients(prefix).items()):
        c = {"mountpoint": mp, "status": proc_status(pid)}
        a = client_asok(mds_asok, pid)
        if a:
            try:
                cp = asok(a, "perf dump")
                c["reply"] = cp.get("client", {}).get("reply", {}).get("avgcount")
                c["msgr_send_messages"] = msgr_sum(cp, "msgr_send_messages")
                c["msgr_recv_messages"] = msgr_sum(cp, "msgr_recv_messages")
            except (OSError, EOFError, ValueError) as e:
                c["error"] = str(e)
        clients[str(pid)] = c
    ours = [s for s in sessions
            if str(s.get("client_metadata", {}).get("mount_point", "")).startswith(prefix.rstrip("/") + "/")]
    sample = {
        "label": label,
        "wall": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
        "mono": mono,
        "loadavg": loadavg(),
        "mds_status": proc_status(mds_pid),
        "perf": {k: perf[k] for k in ("mds", "mds_server", "mds_sessions", "mds_mem", "mds_cache", "mds_log")
                 if k in perf},
        "mds_co": {k: v for k, v in perf.get("mempool", {}).items() if k.startswith("mds_co")},
        "msgr_recv_messages": msgr_sum(perf, "msgr_recv_messages"),
        "msgr_send_messages": msgr_sum(perf, "msgr_send_messages"),
        "cache_status": cache,
        "sessions_total": len(sessions),
        "sessions": [{"id": s.get("id"), "state": s.get("state"), "num_caps": s.get("num_caps"),
                      "num_leases": s.get("num_leases"),
                      "entity_id": s.get("client_metadata", {}).get("entity_id"),
                      "mount_point": s.get("client_metadata", {}).get("mount_point"),
                      "pid": s.get("client_metadata", {}).get("pid")} for s in sessions],
        "our_sessions": len(ours),
        "our_caps": sum(s.get("num_caps", 0) for s in ours),
        "clients": clients,
    }
    with open(os.path.join(outdir, "samples", label + ".json"), "w") as f:
        json.dump(sample, f)
    print(f"sample {label}: load {sample['loadavg']}, sessions {len(sessions)} (ours {len(ours)}), "
          f"hcr {perf['mds_server']['handle_client_request']}, VmRSS {sample['mds_status'].get('VmRSS')} kB",
          file=sys.stderr)


def cmd_note(outdir, key, value):
    path = os.path.join(outdir, "meta.json")
    meta = {}
    if os.path.exists(path):
        with open(path) as f:
            meta = json.load(f)
    try:
        value = json.loads(value)
    except ValueError:
        pass
    meta[key] = value
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)


CLIENT_KEYS = ["client_tick_interval", "client_caps_release_delay", "client_mount_timeout",
               "client_reconnect_stale", "client_cache_size", "client_cache_mid", "client_oc",
               "client_oc_size", "client_oc_max_dirty", "client_oc_max_dirty_age",
               "client_max_inline_size", "client_use_random_mds", "client_dirsize_rbytes",
               "client_quota", "client_force_lazyio", "fuse_use_invalidate_cb", "fuse_set_user_groups",
               "fuse_default_permissions", "fuse_big_writes", "fuse_multithreaded",
               "client_die_on_failed_dentry_invalidate", "client_check_pool_perm",
               "client_permissions", "client_mountpoint", "ms_type"]


def cmd_client_config(outdir, prefix, mds_asok):
    clients = fuse_clients(prefix)
    if not clients:
        raise SystemExit("no ceph-fuse client under " + prefix)
    pid = sorted(clients)[0]
    a = client_asok(mds_asok, pid)
    if not a:
        raise SystemExit(f"no admin socket for ceph-fuse {pid}")
    cfg = {}
    for k in CLIENT_KEYS:
        try:
            r = asok(a, "config get", var=k)
            cfg[k] = r.get(k) if isinstance(r, dict) else r
        except (OSError, EOFError, ValueError) as e:
            cfg[k] = f"({e})"
    diff = asok(a, "config diff").get("diff", {})
    changed = {k: v.get("final") for k, v in diff.items()
               if any(src in v for src in ("file", "override", "cmdline"))}
    cmd_note(outdir, "client_config", json.dumps({"pid": pid, "asok": a, "values": cfg, "non_default": changed}))


def cmd_mkfiles(root, dirs, files, nbytes):
    dirs, files, nbytes = int(dirs), int(files), int(nbytes)
    for d in range(dirs):
        dp = os.path.join(root, f"d{d:04d}")
        os.makedirs(dp)
        for i in range(files):
            body = (f"dir {d} file {i} " * (nbytes // 8 + 1))[:nbytes]
            with open(os.path.join(dp, f"f{i:04d}.txt"), "w") as f:
                f.write(body)


# --- report ---------------------------------------------------------------------------

def load(outdir):
    with open(os.path.join(outdir, "meta.json")) as f:
        meta = json.load(f)
    samples = {}
    for p in glob.glob(os.path.join(outdir, "samples", "*.json")):
        with open(p) as f:
            s = json.load(f)
        samples[s["label"]] = s
    return meta, samples


def get(s, path):
    """get(sample, 'mds_server.handle_client_request'); '.avgcount' of a time-avg."""
    if path == "msgr_recv_messages":
        return s["msgr_recv_messages"]
    if path == "client.reply":
        vals = [c.get("reply") for c in s["clients"].values()]
        return sum(v for v in vals if v is not None) if any(v is not None for v in vals) else None
    if path == "client.msgr_send_messages":
        vals = [c.get("msgr_send_messages") for c in s["clients"].values()]
        return sum(v for v in vals if v is not None) if any(v is not None for v in vals) else None
    cur = s["perf"]
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, dict):
        return cur.get("avgcount")
    return cur


def delta(a, b, path):
    x, y = get(a, path), get(b, path)
    return None if x is None or y is None else y - x


def fmt(v, nd=3):
    if v is None:
        return "absent"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{nd}g}" if abs(v) < 0.001 else f"{v:.{nd}f}".rstrip("0").rstrip(".")
    return str(v)


IDLE_COUNTERS = [
    ("mds_server.handle_client_request", "MDS client requests (hcr)"),
    ("mds.request", "MDS requests"),
    ("mds.reply", "MDS replies"),
    ("mds_server.handle_client_session", "client session messages (renewcaps/open/close)"),
    ("mds.handle_client_caps", "client cap messages"),
    ("mds.handle_client_cap_release", "client cap releases"),
    ("mds.ceph_cap_op_revoke", "cap revokes sent"),
    ("mds.ceph_cap_op_grant", "cap grants sent"),
    ("mds_server.cap_revoke_eviction", "cap revoke evictions"),
    ("mds_sessions.session_add", "sessions added"),
    ("mds_sessions.session_remove", "sessions removed"),
    ("msgr_recv_messages", "all messages received by the MDS (sum of AsyncMessenger workers)"),
    ("client.reply", "MDS replies seen by our ceph-fuse clients (sum of client.reply.avgcount)"),
    ("client.msgr_send_messages", "messages sent by our ceph-fuse clients (to MDS, mon, OSD)"),
]


def op_counters(a, b):
    out = []
    for k in sorted(b["perf"].get("mds_server", {})):
        if k.startswith("req_") and k.endswith("_latency"):
            d = delta(a, b, "mds_server." + k)
            if d:
                out.append((k[4:-8], d))
    return out


def report(outdir):
    meta, S = load(outdir)
    lines, summ = [], []

    def p(text=""):
        lines.append(text)
    mds = meta.get("mds_name", "?")
    p("# Real Ceph MDS measurements (ci/measure-mds.sh)")
    p()
    p(f"- started: {meta.get('start_time')}, finished: {meta.get('end_time')}; host `{meta.get('host')}`, "
      f"{meta.get('nproc')} cores, {meta.get('mem_total')}")
    p(f"- `ceph --version`: {meta.get('ceph_version')}; `ceph-fuse --version`: {meta.get('ceph_fuse_version')}; "
      f"MDS `version`: {meta.get('mds_version')}")
    p(f"- cluster: conf `{meta.get('conf')}`, keyring `{meta.get('keyring')}`, "
      f"{'started by this script' if meta.get('started_cluster') else 'already running (not started by this script)'}; "
      f"one MDS `mds.{mds}` (pid {meta.get('mds_pid')}, rank 0), admin socket `{meta.get('mds_asok')}`")
    p(f"- MDS settings: {', '.join(f'`{k}` = {v}' for k, v in meta.get('mds_config', {}).items())}")
    p(f"- mdsmap: {', '.join(f'`{k}` = {v}' for k, v in meta.get('mdsmap', {}).items())}")
    p(f"- subvolume: `ceph fs subvolume create cephfs {meta.get('subvolume')} --group_name csi`; "
      f"`getpath` = `{meta.get('subvol_path')}`")
    p(f"- every client: `{meta.get('mount_cmd')}` (client.admin, one process and one MDS session per mount point)")
    p("- every MDS figure: a difference between two samples of `ceph daemon mds.%s perf dump` (read straight "
      "from the admin socket, which sends nothing to the MDS), plus `session ls` and `cache status` on the "
      "same socket; the MDS's VmRSS from `/proc/<mds pid>/status`; load average from `/proc/loadavg` "
      "(1/5/15 min) at each sample." % mds)
    p("- other MDS clients present all the time: the mgr's `volumes` module (libcephfs sessions, entity `x`); "
      "the script waits until they have closed before the first window (see the notes at the end); the N = 0 window measures what remains.")
    cc = meta.get("client_config")
    if cc:
        p()
        p(f"ceph-fuse settings in effect (defaults kept; read with `ceph --admin-daemon {cc['asok']} config get <key>` "
          f"on ceph-fuse pid {cc['pid']}):")
        p()
        p("| setting | value |")
        p("|---|---|")
        for k, v in cc["values"].items():
            p(f"| `{k}` | {v} |")
        p()
        p("Settings that differ from the compiled-in defaults (`config diff`, file/cmdline/override): " +
          ", ".join(f"`{k}`" for k in sorted(cc["non_default"])) + ".")

    # 1. idle
    summary_at = len(lines)
    p()
    p("## 1. Idle ceph-fuse clients: MDS traffic per client per second")
    p()
    p(f"Window: `sleep {meta.get('idle_secs')}` with nothing touching the mounts; the window starts "
      f"{meta.get('idle_settle')} s after the last mount of that step. Clients are added step by step "
      f"(0 → 1 → 10 → 50): the clients of the earlier step stay mounted. 'per client/s, net' subtracts the "
      f"N = 0 window's rate (no client of ours; other sessions: see the notes at the end) before dividing by N.")
    notes = meta.get("mount_failures")
    if notes:
        p()
        p(f"Mount failures: {notes}")
    p()
    p("| N | window (s) | load avg start → end | counter | Δ | per s | per client/s, raw | per client/s, net of N=0 | sessions (`session ls`: all / ours) | caps held by our sessions |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    base = None
    idle_ns = meta.get("idle_ns_done", [])
    for n in [0] + idle_ns:
        a, b = S.get(f"idle{n}_start"), S.get(f"idle{n}_end")
        if not a or not b:
            continue
        secs = b["mono"] - a["mono"]
        rates = {}
        for path, what in IDLE_COUNTERS:
            d = delta(a, b, path)
            rate = None if d is None else d / secs
            rates[path] = rate
            raw = "–" if n == 0 or rate is None else fmt(rate / n, 4)
            net = "–"
            if n and rate is not None and base and base.get(path) is not None:
                net = fmt((rate - base[path]) / n, 4)
            if n and path.startswith("client."):
                net = "– (own clients only)"
            p(f"| {n} | {secs:.1f} | {a['loadavg']} → {b['loadavg']} | {what} `{path}` | {fmt(d)} | "
              f"{fmt(rate, 4)} | {raw} | {net} | {b['sessions_total']} / {b['our_sessions']} | {b['our_caps']} |")
        if n == 0:
            base = rates
        elif base:
            def net(path):
                r, b0 = rates.get(path), base.get(path)
                return None if r is None or b0 is None else (r - b0) / n
            summ.append(f"| idle, N={n} ({secs:.0f} s window, load {a['loadavg']} → {b['loadavg']}) | "
                        f"hcr/s per client: raw {fmt(rates['mds_server.handle_client_request'] / n, 4)}, "
                        f"net {fmt(net('mds_server.handle_client_request'), 4)}; session msgs/s per client net "
                        f"{fmt(net('mds_server.handle_client_session'), 4)}; cap msgs/s per client net "
                        f"{fmt(net('mds.handle_client_caps'), 4)}; all MDS msgs received/s per client net "
                        f"{fmt(net('msgr_recv_messages'), 4)}; client replies/s per client "
                        f"{fmt(None if rates['client.reply'] is None else rates['client.reply'] / n, 4)} | "
                        f"`session ls`: {b['sessions_total']} sessions, {b['our_sessions']} ours |")

    # 2. mount / unmount
    p()
    p("## 2. One mount and one unmount")
    p()
    p(f"Mount: samples right before `{meta.get('mount_cmd')}`, right after it returned (and /proc/mounts "
      f"listed the mount), and right after `stat <mountpoint>` returned. Unmount: samples right before `umount <mountpoint>` and after the "
      f"ceph-fuse process had exited (its session closed). Repeated {meta.get('mount_reps')} times on the "
      f"same subvolume, with no other client of ours mounted.")
    p()
    p("| # | load avg | mount+stat: hcr Δ (mount / stat) | mount+stat: client replies | mount+stat: session msgs Δ | mount+stat: cap msgs Δ | mount+stat: all msgs received Δ | ceph-fuse ms / stat ms | umount: hcr Δ | umount: session msgs Δ | umount: cap msgs Δ | umount: cap releases Δ | umount: all msgs received Δ | umount until process exit ms |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    mh, uh = [], []
    for i in range(1, int(meta.get("mount_reps", 0)) + 1):
        a, b = S.get(f"mount{i}_pre"), S.get(f"mount{i}_post")
        c, d = S.get(f"umount{i}_pre"), S.get(f"umount{i}_post")
        if not (a and b and c and d):
            continue
        m = delta(a, b, "mds_server.handle_client_request")
        u = delta(c, d, "mds_server.handle_client_request")
        mh.append(m)
        uh.append(u)
        mid = S.get(f"mount{i}_mounted")
        split = ""
        if mid:
            split = f" ({delta(a, mid, 'mds_server.handle_client_request')} / " \
                    f"{delta(mid, b, 'mds_server.handle_client_request')})"
        p(f"| {i} | {a['loadavg']} | {m}{split} | {fmt(get(b, 'client.reply'))} | "
          f"{delta(a, b, 'mds_server.handle_client_session')} | {delta(a, b, 'mds.handle_client_caps')} | "
          f"{delta(a, b, 'msgr_recv_messages')} | {meta.get(f'mount{i}_ms')} / {meta.get(f'stat{i}_ms', '–')} | "
          f"{u} | {delta(c, d, 'mds_server.handle_client_session')} | "
          f"{delta(c, d, 'mds.handle_client_caps')} | {delta(c, d, 'mds.handle_client_cap_release')} | "
          f"{delta(c, d, 'msgr_recv_messages')} | {meta.get(f'umount{i}_ms')} |")
    if mh:
        p()
        p(f"Median hcr: mount + stat {statistics.median(mh)}, unmount {statistics.median(uh)} "
          f"(min–max {min(mh)}–{max(mh)} and {min(uh)}–{max(uh)}).")
        summ.append(f"| one mount + `stat` / one unmount ({len(mh)} repetitions) | hcr median {statistics.median(mh)} "
                    f"(min–max {min(mh)}–{max(mh)}) / {statistics.median(uh)} ({min(uh)}–{max(uh)}) | "
                    f"load {S['mount1_pre']['loadavg']} |")
        a, mid, b = S.get("mount1_pre"), S.get("mount1_mounted"), S.get("mount1_post")
        if mid:
            ops = op_counters(a, mid)
            p(f"Per-op counts of mount 1, ceph-fuse alone (`req_<op>_latency.avgcount` Δ): " +
              (", ".join(f"{o} {d}" for o, d in ops) if ops else "none") + ".")
            ops = op_counters(mid, b)
            p(f"Per-op counts of the `stat` after mount 1: " + (", ".join(f"{o} {d}" for o, d in ops) if ops else "none") + ".")
        else:
            ops = op_counters(a, b)
            p(f"Per-op counts of mount 1 + stat: " + (", ".join(f"{o} {d}" for o, d in ops) if ops else "none") + ".")
        c, d = S.get("umount1_pre"), S.get("umount1_post")
        ops = op_counters(c, d)
        p(f"Per-op counts of unmount 1: " + (", ".join(f"{o} {d}" for o, d in ops) if ops else "none") + ".")

    # 3. untar
    p()
    p("## 3. Untar through one ceph-fuse mount")
    p()
    u = meta.get("untar")
    a, b, c = S.get("untar_pre"), S.get("untar_post"), S.get("untar_settled")
    if u and a and b:
        files, dirs = u["files"], u["dirs"]
        p(f"Tarball: {u['dirs_inner']} dirs × {u['files_per_dir']} files of {u['file_bytes']} bytes = {files} files "
          f"and {dirs} directories (incl. the top one), {u['tar_bytes']} bytes of tar, built with "
          f"`measure_mds.py mkfiles` + `{u['tar_create_cmd']}` on local disk. Command: `{u['cmd']}` "
          f"(GNU tar as root: restores owners, modes and mtimes). Wall time **{u['wall_s']} s**. "
          f"Samples: right before tar, right after tar returned, and {u['settle']} s later (`settled`: "
          f"cap flushes and releases done).")
        p()
        p(f"Load avg: before {a['loadavg']}, after tar {b['loadavg']}" + (f", settled {c['loadavg']}" if c else "") + ".")
        p()
        p("| counter | Δ during tar | Δ until settled | per file (settled) | per dir (settled) | per file+dir (settled) |")
        p("|---|---|---|---|---|---|")
        e = c or b
        for path, what in IDLE_COUNTERS[:8] + [("msgr_recv_messages", "all messages received by the MDS"),
                                                ("client.reply", "MDS replies seen by the ceph-fuse client")]:
            d1, d2 = delta(a, b, path), delta(a, e, path)
            p(f"| {what} `{path}` | {fmt(d1)} | {fmt(d2)} | {fmt(None if d2 is None else d2 / files, 4)} | "
              f"{fmt(None if d2 is None else d2 / dirs, 4)} | {fmt(None if d2 is None else d2 / (files + dirs), 4)} |")
        p()
        p("Per op (`mds_server.req_<op>_latency.avgcount` Δ, until settled; ops with Δ = 0 left out):")
        p()
        p("| op | Δ | per file | per dir |")
        p("|---|---|---|---|")
        for o, d in op_counters(a, e):
            p(f"| {o} | {d} | {fmt(d / files, 4)} | {fmt(d / dirs, 4)} |")
        p()
        hcr = delta(a, e, "mds_server.handle_client_request")
        summ.append(f"| untar of {files} files / {dirs} dirs, one mount | hcr {hcr}: {fmt(hcr / files, 4)} per file, "
                    f"{fmt(hcr / (files + dirs), 4)} per file+dir; " +
                    ", ".join(f"{o} {fmt(d / files, 4)}/file" for o, d in op_counters(a, e)) +
                    f"; wall {u['wall_s']} s | load {a['loadavg']} → {b['loadavg']} |")
        p(f"Caps: our session held {a['our_caps']} caps before, {b['our_caps']} right after, "
          f"{e['our_caps']} settled (`mds.caps` {get(a, 'mds.caps')} → {get(e, 'mds.caps')}; "
          f"`mds.inodes` {get(a, 'mds.inodes')} → {get(e, 'mds.inodes')}).")
    else:
        p("not run")

    # 4. memory
    p()
    p("## 4. MDS memory vs sessions and caps")
    p()
    p("`mds_mem.rss`/`heap` are the MDS's own perf counters (kB); VmRSS is `/proc/<mds pid>/status`; "
      "`cache status` bytes is the `mds_co` mempool (the MDS cache's accounted bytes). 'ours' counts the "
      "sessions whose `client_metadata.mount_point` is under this script's temp dir.")
    p()
    p("| state | load avg | sessions all / ours | caps of our sessions | `mds.caps` | `mds.inodes` | `mds_mem.cap` | `mds_mem.rss` kB | `mds_mem.heap` kB | VmRSS kB | VmHWM kB | `cache status` bytes |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|")
    states = [("mem_0", "0 clients of ours (before the idle steps)")]
    for n in idle_ns:
        states.append((f"idle{n}_end", f"{n} idle clients (end of its window)"))
    states += [("mem_after_idle_umount", "all idle clients unmounted"),
               ("untar_pre", "1 fresh client, before untar"),
               ("untar_post", "right after untar"),
               ("untar_settled", "untar settled (caps held)"),
               ("untar_umounted", "untar client unmounted (caps dropped)")]
    for lab, what in states:
        s = S.get(lab)
        if not s:
            continue
        cs = (s.get("cache_status") or {}).get("pool", {})
        p(f"| {what} | {s['loadavg']} | {s['sessions_total']} / {s['our_sessions']} | {s['our_caps']} | "
          f"{fmt(get(s, 'mds.caps'))} | {fmt(get(s, 'mds.inodes'))} | {fmt(get(s, 'mds_mem.cap'))} | "
          f"{fmt(get(s, 'mds_mem.rss'))} | {fmt(get(s, 'mds_mem.heap'))} | "
          f"{s['mds_status'].get('VmRSS')} | {s['mds_status'].get('VmHWM')} | {cs.get('bytes')} |")
    p()
    p("Derived (differences of the rows above; RSS is allocator-level and does not shrink when the "
      "cache does, so the per-session figures are upper bounds that include each session's caps):")
    p()
    p("| figure | from → to | Δ VmRSS kB | Δ `mds_mem.rss` kB | Δ `cache status` bytes | divisor | VmRSS per unit (kB) | cache bytes per unit |")
    p("|---|---|---|---|---|---|---|---|")
    m0 = S.get("mem_0")

    def row(name, x, y, div, divname):
        if not x or not y or not div:
            return
        dv = y["mds_status"].get("VmRSS", 0) - x["mds_status"].get("VmRSS", 0)
        dr = delta(x, y, "mds_mem.rss")
        dc = (y.get("cache_status") or {}).get("pool", {}).get("bytes", 0) - \
             (x.get("cache_status") or {}).get("pool", {}).get("bytes", 0)
        p(f"| {name} | {x['label']} → {y['label']} | {dv} | {fmt(dr)} | {dc} | {div} {divname} | "
          f"{fmt(dv / div, 4)} | {fmt(dc / div, 4)} |")
        summ.append(f"| MDS memory, {name} | VmRSS {fmt(dv / div, 4)} kB, `cache status` {fmt(dc / div, 4)} bytes "
                    f"per {divname[:-1]} ({x['label']} → {y['label']}) | load {y['loadavg']} |")

    for n in idle_ns:
        s = S.get(f"idle{n}_end")
        if s and m0:
            row(f"per idle session, N={n}", m0, s, s["our_sessions"] - m0["our_sessions"], "sessions")
    a, e = S.get("untar_pre"), S.get("untar_settled") or S.get("untar_post")
    if a and e:
        dcaps = e["our_caps"] - a["our_caps"]
        row("per cap held after untar (includes the inodes and dentries cached with them)", a, e, dcaps, "caps")
        dino = (get(e, "mds.inodes") or 0) - (get(a, "mds.inodes") or 0)
        row("per inode added to the MDS cache by the untar", a, e, dino, "inodes")
        f = S.get("untar_umounted")
        if f:
            dropped = e["our_caps"] - f["our_caps"]
            row("caps dropped by the unmount (negative = freed)", e, f, dropped, "caps")
    p()
    extra = meta.get("notes")
    if extra:
        p("## Notes from the run")
        p()
        for n in extra:
            p(f"- {n}")
    head = ["", "## Summary (details and exact counters below)", "", "| what | figure | context |",
            "|---|---|---|"] + summ
    print("\n".join(lines[:summary_at] + head + lines[summary_at:]))


def main():
    argv = sys.argv[1:]
    if not argv:
        raise SystemExit(__doc__)
    cmd = argv[0]

    def opt(name, default=None):
        if name in argv:
            return argv[argv.index(name) + 1]
        return default

    if cmd == "sample":
        cmd_sample(argv[1], argv[2], opt("--mds-asok"), opt("--mds-pid"), opt("--mnt-prefix"))
    elif cmd == "note":
        cmd_note(argv[1], argv[2], argv[3])
    elif cmd == "notes-append":
        path = os.path.join(argv[1], "meta.json")
        meta = json.load(open(path)) if os.path.exists(path) else {}
        meta.setdefault("notes", []).append(argv[2])
        json.dump(meta, open(path, "w"), indent=1)
    elif cmd == "ours":
        # open sessions of our clients, for the wait loops
        sessions = asok(opt("--mds-asok"), "session ls")
        pre = opt("--mnt-prefix").rstrip("/") + "/"
        mine = [str(s.get("client_metadata", {}).get("mount_point", "")).startswith(pre) for s in sessions]
        if "--others" in argv:  # sessions of anybody else, in any state (the mgr's, mostly)
            print(sum(1 for m in mine if not m))
        else:
            print(sum(1 for s, m in zip(sessions, mine) if m and s.get("state") == "open"))
    elif cmd == "asok-get":
        out = {}
        for k in argv[2:]:
            r = asok(argv[1], "config get", var=k)
            out[k] = r.get(k) if isinstance(r, dict) else r
        print(json.dumps(out))
    elif cmd == "asok":
        print(json.dumps(asok(argv[1], argv[2])))
    elif cmd == "client-config":
        cmd_client_config(argv[1], opt("--mnt-prefix"), opt("--mds-asok"))
    elif cmd == "mkfiles":
        cmd_mkfiles(*argv[1:5])
    elif cmd == "report":
        report(argv[1])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
