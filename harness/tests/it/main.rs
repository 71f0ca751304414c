//! The simulator against the real driver and fake-ceph: the 2018 attempts on small
//! clusters with pinned seeds, the busy workload, determinism, Manila provisioning, and the `harness`
//! binary (`run`, and `up` driven over its printed endpoints).

#![allow(clippy::unwrap_used)]

mod attempts;
mod busy;
mod calibration;
mod cli;
mod compare;
mod determinism;
mod external;
mod faults;
mod manila;
mod plots;
mod real;
mod real_ceph;
mod report;
mod scenarios;
mod soak;
mod up;

use harness::params::Params;
use harness::{BackendKind, Output, Run};

/// A built-in scenario with overrides.
pub fn scenario(name: &str, sets: &[&str]) -> Params {
    let mut p = Params::load(name).unwrap();
    for s in sets {
        p = p.set(s).unwrap();
    }
    p
}

/// Runs `p` with `seed` on the real back end, the event log in memory.
pub async fn run_real(p: Params, seed: u64) -> Run {
    harness::run(p, seed, BackendKind::Real, Output::Memory)
        .await
        .unwrap()
}

/// Every run ends clean: nothing left in the API, fake-ceph or the nodes' directories.
pub fn assert_clean(r: &Run) {
    let s = &r.summary;
    assert!(
        s.clean,
        "leaks after teardown: {:?} {:?}",
        s.leaked_objects, s.leaks
    );
    assert_eq!(s.leaks.mds_sessions, 0);
    assert_eq!(s.leaks.subvolumes, 0);
    assert_eq!(s.leaks.mount_records, 0);
    assert_eq!(s.leaks.files, 0);
    assert_eq!(s.leaks.shares, 0);
    assert_eq!(s.leaks.access_rules, 0);
    assert_eq!(s.leaks.cephx_users, 0);
}
