//! A scenario on a real Ceph cluster (`harness run --ceph-conf`): the driver's cli
//! transport and ceph-fuse mounts, one real client per (share, node). Run when
//! `TRAINRIDE_REAL_CEPH` names the directory `ci/ceph-cluster.sh start` filled (`.ci/run`
//! sets it, as root); without it this test says so and checks nothing.

use std::path::PathBuf;

use harness::{BackendKind, Output};

use crate::{assert_clean, scenario};

fn cluster_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TRAINRIDE_REAL_CEPH").map(PathBuf::from);
    if dir.is_none() {
        println!("skipped: TRAINRIDE_REAL_CEPH is not set (ci/ceph-cluster.sh start sets up one)");
    }
    dir
}

/// The real cluster of `dir` as an external back end.
fn real_ceph(dir: &std::path::Path) -> BackendKind {
    let keyring = std::fs::read_to_string(dir.join("ceph.client.admin.keyring")).unwrap();
    let id = fake_manila::parse_keyring(&keyring, Some("client.admin")).unwrap();
    BackendKind::External(harness::csi::External {
        ceph_url: String::new(),
        ceph_conf: Some(dir.join("ceph.conf")),
        ceph_admin_key: id.key.expose().to_owned(),
        os_auth_url: None,
        os_user: String::new(),
        os_password: String::new(),
        os_project: String::new(),
        os_domain: String::new(),
    })
}

/// ceph-fuse mounts under the runs' temporary roots.
fn harness_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.contains("/harness-"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_attach_on_real_ceph_mounts_every_client_and_leaves_nothing() {
    let Some(dir) = cluster_dir() else {
        return;
    };
    // s = 2 shares x r = 5 replicas: 10 ceph-fuse clients, held 20 s.
    let p = scenario(
        "attempt-3-skip-attach",
        &["shares=2", "replicas=5", "hold_s=20"],
    );
    let out = tempfile::tempdir().unwrap();
    let r = harness::run(p, 1, real_ceph(&dir), Output::Dir(out.path().into()))
        .await
        .unwrap();
    let s = &r.summary;
    assert_eq!(s.outcome, "all pods Running");
    assert_eq!(s.running, 5);
    assert!(
        !s.rpcs.iter().any(|row| row.code != "Ok"),
        "failed calls: {:?}",
        s.rpcs
    );
    // The real MDS held a session per mount (the cluster's own count, read by perf dump)
    // and served their requests.
    assert!(
        s.wall.fake_ceph_peak_sessions >= 10,
        "{}",
        s.wall.fake_ceph_peak_sessions
    );
    assert!(s.wall.fake_ceph_hcr > 0);
    // Nothing left: no subvolume, cephx user, session or journal entry of the run (the
    // inventory read the cluster with `ceph` and `rados`), no mount.
    assert_clean(&r);
    assert!(harness_mounts().is_empty(), "{:?}", harness_mounts());
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("all pods Running"));
}
