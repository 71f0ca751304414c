//! Every built-in scenario, shrunk to a few pods, runs to the end on the real back end and
//! tears down clean: the small version of each scenario that CI runs.

use harness::params::BUILTIN;

use crate::{assert_clean, run_real, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_builtin_scenario_runs_small_and_tears_down_clean() {
    for (name, _) in BUILTIN {
        let p = scenario(name, &["shares=2", "replicas=3"]);
        assert_eq!((p.shares, p.replicas), (2, 3), "{name}");
        let r = run_real(p, 7).await;
        let s = &r.summary;
        assert!(
            s.pods_created >= 3,
            "{name}: {} pods created",
            s.pods_created
        );
        // Each attempt has its own outcome (tests in attempts.rs pin them); every one
        // must end with nothing left behind.
        assert_clean(&r);
        assert_eq!(s.leaks.mds_sessions, 0, "{name}");
        // The terminal table carries the busy workload's figures when there is one.
        let table = s.table();
        assert_eq!(
            table.contains("| untar p50/p90/p99 (sim) |"),
            s.busy.is_some(),
            "{name}: {table}"
        );
        if let Some(b) = &s.busy {
            assert!(
                table.contains(&format!("| {} / 0 / 0 pods ", b.pods_finished)),
                "{name}: {table}"
            );
        }
    }
}
