//! One seed, one event log, with the real driver's calls in the loop.

use crate::{assert_clean, run_real, scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_replays_the_same_event_log_and_another_seed_does_not() {
    let p = scenario(
        "attempt-1-attach-wreck",
        &[
            "shares=2",
            "replicas=4",
            "stall_s=300",
            "authz.read_cost_us=20000",
        ],
    );
    let a = run_real(p.clone(), 5).await;
    let b = run_real(p.clone(), 5).await;
    let c = run_real(p, 6).await;
    assert!(a.events.len() > 200, "{} events", a.events.len());
    let first_difference = a.events.iter().zip(&b.events).position(|(x, y)| x != y);
    assert_eq!(first_difference, None, "the runs diverge");
    assert_eq!(a.events.len(), b.events.len());
    assert_eq!(a.summary.events_hash, b.summary.events_hash);
    assert_ne!(a.summary.events_hash, c.summary.events_hash);
    for r in [&a, &b, &c] {
        assert_clean(r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_bound_on_real_calls_does_not_change_the_log() {
    let p = scenario("attempt-3-skip-attach", &["shares=3", "replicas=4"]);
    let wide = run_real(p.clone().set("max_inflight=64").unwrap(), 9).await;
    let narrow = run_real(p.set("max_inflight=1").unwrap(), 9).await;
    assert_eq!(wide.events, narrow.events);
    assert_clean(&wide);
    assert_clean(&narrow);
}
