#!/usr/bin/env python3
"""Sensitivity of the simulator's headline outcomes to its model parameters.

Runs the three 2018 attempts with each parameter changed on its own and prints a
Markdown table (CALIBRATION.md, "Sensitivity"). Run by hand on a release build; it is
not part of CI:

    cargo build --release -p harness
    python3 ci/sensitivity.py [--harness target/release/harness] [--seeds 1,2,3]

Every figure it prints is the simulator's model output (simulated time), not a
measurement of a cluster.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

# (label, --set assignments) applied to every scenario.
VARIANTS = [
    ("defaults (calibrated)", []),
    ("api_latency x10 (10 / 40 ms)", ["api_latency.median_ms=10", "api_latency.p99_ms=40"]),
    ("watch_latency 30 / 200 ms (old default)", ["watch_latency.median_ms=30", "watch_latency.p99_ms=200"]),
    ("authz.lag 50 / 500 ms (old default)", ["authz.lag.median_ms=50", "authz.lag.p99_ms=500"]),
    ("authz.lag 2,000 / 8,000 ms (old attempt-1)", ["authz.lag.median_ms=2000", "authz.lag.p99_ms=8000"]),
    ("authz.read_cost_us 60,000 (old attempt-1)", ["authz.read_cost_us=60000"]),
    ("qps.attacher 50 / 100", ["qps.attacher=[50,100]"]),
    ("qps.kcm 200 / 300", ["qps.kcm=[200,300]"]),
    ("qps.kubelet 50 / 100", ["qps.kubelet=[50,100]"]),
    ("node_status_period_s 1", ["node_status_period_s=1"]),
    ("adc_verify_period_s 600", ["adc_verify_period_s=600"]),
    ("csi_latency.stage 50 / 500 ms", ["csi_latency.stage.median_ms=50", "csi_latency.stage.p99_ms=500"]),
    ("container_start 100 / 300 ms", ["container_start.median_ms=100", "container_start.p99_ms=300"]),
    ("attacher_trivial false (finalizer + ControllerPublish)", ["attacher_trivial=false"]),
    ("adc_serialize_per_volume false (1.18+)", ["adc_serialize_per_volume=false"]),
    ("waitforattach_uses_devicepath false (1.13 fix)", ["waitforattach_uses_devicepath=false"]),
]


def run(harness, scenario, sets, seed):
    with tempfile.TemporaryDirectory(prefix="sensitivity-") as out:
        cmd = [harness, "run", scenario, "--seed", str(seed), "--events", "none", "--out", out]
        for s in sets:
            cmd += ["--set", s]
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        path = os.path.join(out, "summary.json")
        if not os.path.exists(path):
            sys.exit(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
        with open(path) as f:
            return json.load(f)


def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.mean(xs) if xs else None


def fmt(x, digits=0):
    return "-" if x is None else f"{x:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--harness", default="target/release/harness")
    ap.add_argument("--seeds", default="1,2,3", help="seeds for attempt-1 and attempt-3")
    ap.add_argument("--attempt2-seeds", default="1", help="seeds for attempt-2 (15 s a run)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    seeds2 = [int(s) for s in args.attempt2_seeds.split(",")]
    print(
        f"| change (seeds {args.seeds}; attempt-2: {args.attempt2_seeds}) "
        "| attempt-1: pods Running / 100 | attempt-1: kept another node's VA name "
        "| attempt-2: most pods Running | attempt-2: peak MDS sessions "
        "| attempt-3: all Running (s) | attempt-3: start-up p50 (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, sets in VARIANTS:
        a1 = [run(args.harness, "attempt-1-attach-wreck", sets, s) for s in seeds]
        a2 = [run(args.harness, "attempt-2-incremental", sets, s) for s in seeds2]
        a3 = [run(args.harness, "attempt-3-skip-attach", sets, s) for s in seeds]
        cells = [
            fmt(mean([s["running"] for s in a1]), 1),
            fmt(mean([s["foreign_device_paths"] for s in a1])),
            fmt(mean([s["max_running"] for s in a2]), 1),
            fmt(mean([s["peak_mds_sessions"] for s in a2])),
            fmt(mean([s["all_running_s"] for s in a3]), 1),
            fmt(mean([s["pod_startup"]["p50_ms"] / 1e3 for s in a3]), 1),
        ]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
