#!/usr/bin/env python3
"""Reads a csi-sanity JUnit report: prints passed/failed/skipped, every failure, and
every skipped spec with csi-sanity's reason and what it means for cephfs-csi. Exits 1 on
a failure, or on a skip whose reason is not one this file explains (a new csi-sanity
version or a capability the driver stopped advertising must be looked at, not passed).

    sanity_report.py junit.xml <configuration>
"""

import re
import sys
import xml.etree.ElementTree as ET

# csi-sanity's skip reason -> why cephfs-csi does not run that spec, and in which
# configurations that holds. Each is a capability the driver does not advertise there,
# or a spec csi-sanity itself does not run by default. A skip in a configuration not
# listed is unexplained: the driver stopped advertising something it should.
ALL = ("fake-ceph", "fake-ceph-attach", "manila", "real-ceph")
CEPHFS = ("fake-ceph", "fake-ceph-attach", "real-ceph")
SKIP_ATTACH = ("fake-ceph", "manila", "real-ceph")
MANILA = ("manila",)
EXPLAINED = [
    (r"^pending$", "pending upstream (PIt): csi-sanity never runs it", ALL),
    (r"GroupControllerService not supported",
     "no GroupController service: VolumeGroupSnapshots are not implemented", ALL),
    (r"ControllerModifyVolume not supported|Modify [Vv]olume not supported",
     "MODIFY_VOLUME not advertised: no mutable parameters (VolumeAttributesClass)", ALL),
    (r"ControllerGetVolumeHealth not supported|ControllerListVolumeHealth not supported",
     "GET/LIST_VOLUME_HEALTH (CSI 1.13, alpha) not advertised; the driver speaks CSI 1.12",
     ALL),
    (r"NodeGetVolumeHealth not supported|NodeGetStorageHealth not supported",
     "node GET_VOLUME_HEALTH/GET_STORAGE_HEALTH (CSI 1.13, alpha) not advertised", ALL),
    (r"SNAPSHOT_ACCESSIBILITY_CONSTRAINTS not supported",
     "SNAPSHOT_ACCESSIBILITY_CONSTRAINTS (CSI 1.13) not advertised: a snapshot lives with "
     "its file system, reachable from every node", ALL),
    (r"NodeExpandVolume not supported",
     "node EXPAND_VOLUME not advertised: a CephFS quota grows on the controller alone", ALL),
    (r"^ControllerPublishVolume not supported|ControllerUnpublishVolume not supported|"
     r"Controller Publish, UnpublishVolume not supported",
     "PUBLISH_UNPUBLISH_VOLUME not advertised: CSIDriver attachRequired=false (skip-attach)",
     SKIP_ATTACH),
    (r"ControllerPublishVolume.readonly field not supported",
     "PUBLISH_READONLY not advertised: read-only is a mount option on the node",
     ("fake-ceph-attach",)),
    (r"testnodevolumeattachlimit not enabled",
     "not run in csi-sanity's default configuration (--csi.testnodevolumeattachlimit); "
     "attach limits are left to Kubernetes' CSINode", ("fake-ceph-attach",)),
    (r"GetCapacity not supported",
     "GET_CAPACITY not advertised by the Manila back end (as the Manila CSI plugin: "
     "capacity is a project quota, not a pool)", MANILA),
    (r"ListVolumes not supported",
     "LIST_VOLUMES not advertised by the Manila back end (as the Manila CSI plugin)", MANILA),
    (r"ListSnapshots not supported|GetSnapshot not supported",
     "LIST_SNAPSHOTS/GET_SNAPSHOT not advertised by the Manila back end (as the Manila "
     "CSI plugin)", MANILA),
    (r"Volume Cloning not supported",
     "CLONE_VOLUME not advertised by the Manila back end: Manila makes shares from "
     "snapshots, not from shares", MANILA),
]

def outcome(tc):
    for c in tc:
        if c.tag == "skipped":
            msg = (c.get("message") or "").strip()
            msg = re.sub(r"^skipped\s*-\s*", "", msg)
            return "skipped", msg.splitlines()[0] if msg else ""
        if c.tag in ("failure", "error"):
            return "failed", (c.get("message") or c.text or "").strip()
    return "passed", ""


def main():
    path, config = sys.argv[1], sys.argv[2]
    tree = ET.parse(path)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    skipped, failed, unexplained = [], [], []
    for tc in tree.iter("testcase"):
        name = re.sub(r"^\[It\]\s*", "", tc.get("name", ""))
        if name.startswith(("[BeforeSuite]", "[AfterSuite]", "[SynchronizedBeforeSuite]",
                            "[SynchronizedAfterSuite]", "[ReportAfterSuite]", "[DeferCleanup")):
            st, msg = outcome(tc)
            if st == "failed":
                failed.append((name, msg))
            continue
        st, msg = outcome(tc)
        counts[st] += 1
        if st == "failed":
            failed.append((name, msg))
        elif st == "skipped":
            why = next(
                (w for rx, w, where in EXPLAINED if config in where and re.search(rx, msg)),
                None,
            )
            skipped.append((name, msg, why))
            if why is None:
                unexplained.append((name, msg))
    total = sum(counts.values())
    print(f"csi-sanity on {config}: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped of {total} specs")
    if skipped:
        print("skipped (csi-sanity's reason: what it means here):")
        for name, msg, why in skipped:
            print(f"  - {name}\n      {msg}: {why or 'UNEXPLAINED'}")
    for name, msg in failed:
        print(f"FAILED: {name}\n  {msg[:400]}")
    for name, msg in unexplained:
        print(f"UNEXPLAINED SKIP: {name}: {msg}")
    return 1 if failed or unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
