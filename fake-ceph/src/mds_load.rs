//! The MDS load model: how fast the active MDS ranks serve client requests, how long a
//! reply takes under load, and how many capabilities and cached inodes (hence how much
//! memory) the clients make it hold. Pure functions of the model's parameters, so that a
//! simulator can integrate them over its own clock and charge the results to the
//! counters ([`crate::mds::Mount::charge_modelled`]).
//!
//! The request model is a closed system, the shape of a metadata benchmark in which each
//! client keeps one request outstanding: a client thinks for `Z` seconds (its own work
//! per request: FUSE, network, data), then waits for the MDS. With `N` clients and a
//! capacity of `mu` requests per second, the asymptotic bounds give the throughput
//! `X = min(N / (Z + 1/mu), mu)`; each client progresses at `X / N`, and the reply
//! latency is `N / X - Z` (the response-time law), which stays at the service time
//! `1/mu` below saturation and grows linearly with `N` beyond it.
//!
//! Anchors (see the project's `kubernetes.md`, section 1.1): about 6,000 cache-missed
//! requests per second per MDS (Yan Zheng); more than 100k creates/s from 16 active MDS,
//! roughly linear scaling; cephfs-perf's kernel build, in which 16 clients on one MDS
//! took more than twice as long per client as 8 did. Memory follows the fake's
//! per-session, per-cap and per-inode estimates ([`MdsConfig`]); the inode cache is held
//! to `mds_cache_memory_limit` by recalling caps, down to `mds_min_caps_per_client`.

use serde::{Deserialize, Serialize};

use crate::mds::MdsConfig;

/// Request capacity of the active MDS ranks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoadModel {
    /// `mu`: client requests one active MDS serves per second.
    pub requests_per_s_per_mds: f64,
    /// Active ranks (`max_mds`); at least one counts.
    pub active_mds: u32,
    /// What each rank beyond the first adds, as a fraction of one rank's capacity
    /// (1.0: linear scaling, as mdtest reached with 16 ranks).
    pub multi_mds_efficiency: f64,
}

impl Default for LoadModel {
    fn default() -> Self {
        Self {
            requests_per_s_per_mds: 6_000.0,
            active_mds: 1,
            multi_mds_efficiency: 1.0,
        }
    }
}

impl LoadModel {
    /// Requests per second all active ranks serve together.
    pub fn capacity(&self) -> f64 {
        let extra = f64::from(self.active_mds.max(1) - 1) * self.multi_mds_efficiency.max(0.0);
        self.requests_per_s_per_mds.max(0.0) * (1.0 + extra)
    }
}

/// The steady state of `N` closed-loop clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// `X`: requests per second served.
    pub throughput: f64,
    /// `X / N`: requests per second each client completes.
    pub per_client: f64,
    /// Mean time from a request's arrival at the MDS to its reply, seconds.
    pub reply_latency_s: f64,
    /// Whether the MDS is the bottleneck (`N` beyond `1 + Z mu`).
    pub saturated: bool,
}

/// `clients` clients, each thinking `think_s` seconds between requests, against an MDS
/// serving `capacity` requests per second. No clients (or no capacity): nothing moves.
pub fn closed_loop(clients: usize, think_s: f64, capacity: f64) -> Load {
    if clients == 0 || capacity <= 0.0 || !capacity.is_finite() {
        return Load {
            throughput: 0.0,
            per_client: 0.0,
            reply_latency_s: 0.0,
            saturated: clients > 0,
        };
    }
    let n = clients as f64;
    let z = think_s.max(0.0);
    let service = 1.0 / capacity;
    let unsaturated = n / (z + service);
    let throughput = unsaturated.min(capacity);
    let per_client = throughput / n;
    let reply_latency_s = (n / throughput - z).max(service);
    Load {
        throughput,
        per_client,
        reply_latency_s,
        saturated: unsaturated > capacity,
    }
}

/// Seconds one client needs for `requests` requests when it has the MDS to itself
/// alongside `clients - 1` others doing the same: `requests / (X / N)`.
pub fn time_for(requests: f64, clients: usize, think_s: f64, capacity: f64) -> f64 {
    let l = closed_loop(clients.max(1), think_s, capacity);
    if l.per_client <= 0.0 {
        f64::INFINITY
    } else {
        requests / l.per_client
    }
}

/// Inodes the MDS cache holds at `mds_cache_memory_limit` (at least one).
pub fn cache_limit_inodes(c: &MdsConfig) -> u64 {
    (c.cache_memory_limit_bytes / c.bytes_per_inode.max(1)).max(1)
}

/// Caps one client may hold with `sessions` sessions open: what its own cache keeps
/// (`client_cache_inodes`, ceph-fuse's `client_cache_size`), at most
/// `mds_max_caps_per_client`, and at most its share of the MDS cache (the MDS recalls
/// caps beyond it), but never recalled below `mds_min_caps_per_client`.
pub fn caps_limit_per_client(client_cache_inodes: u64, sessions: u64, c: &MdsConfig) -> u64 {
    let share = cache_limit_inodes(c) / sessions.max(1);
    client_cache_inodes
        .min(c.max_caps_per_client)
        .min(share.max(c.min_caps_per_client))
}

/// Inodes in the MDS cache: the live ones, trimmed to the cache limit, but never below
/// what the clients' caps pin.
pub fn cached_inodes(live_inodes: u64, caps: u64, c: &MdsConfig) -> u64 {
    live_inodes.min(cache_limit_inodes(c).max(caps))
}

/// The MDS's resident memory: the idle daemon, its sessions, caps and cached inodes.
pub fn rss_bytes(sessions: u64, caps: u64, cached_inodes: u64, c: &MdsConfig) -> u64 {
    c.base_rss_bytes
        .saturating_add(sessions.saturating_mul(c.bytes_per_session))
        .saturating_add(caps.saturating_mul(c.bytes_per_cap))
        .saturating_add(cached_inodes.saturating_mul(c.bytes_per_inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MU: f64 = 6_000.0;
    /// A client's own time per request in the kernel-untar workload (1.3 ms).
    const Z: f64 = 0.0013;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    fn check(clients: usize, throughput: f64, reply_ms: f64, saturated: bool) {
        let l = closed_loop(clients, Z, MU);
        assert!(close(l.throughput, throughput), "{clients}: {l:?}");
        assert!(close(l.reply_latency_s * 1e3, reply_ms), "{clients}: {l:?}");
        assert_eq!(l.saturated, saturated, "{clients}: {l:?}");
        if clients > 0 {
            assert!(close(l.per_client * clients as f64, l.throughput));
        }
    }

    #[test]
    fn throughput_grows_with_clients_then_saturates_at_mu() {
        let one = 1.0 / (Z + 1.0 / MU);
        check(0, 0.0, 0.0, false);
        check(1, one, 1000.0 / MU, false);
        check(4, 4.0 * one, 1000.0 / MU, false);
        // N* = 1 + Z mu = 8.8: nine clients saturate one MDS.
        check(9, MU, 9000.0 / MU - 1.3, true);
        check(1_000, MU, 1_000_000.0 / MU - 1.3, true);
        check(10_000, MU, 10_000_000.0 / MU - 1.3, true);
    }

    #[test]
    fn reply_latency_grows_linearly_with_clients_once_saturated() {
        let lat = |n| closed_loop(n, Z, MU).reply_latency_s;
        assert!(close(lat(2), lat(1)));
        assert!(lat(100) > lat(10));
        // Each extra client adds one service time.
        assert!(close(lat(2_000) - lat(1_000), 1_000.0 / MU));
        // Never below the service time, even with no think time.
        assert!(close(closed_loop(1, 0.0, MU).reply_latency_s, 1.0 / MU));
    }

    #[test]
    fn ranks_add_capacity_with_their_efficiency() {
        let m = |active_mds, multi_mds_efficiency| LoadModel {
            requests_per_s_per_mds: MU,
            active_mds,
            multi_mds_efficiency,
        };
        assert!(close(m(1, 1.0).capacity(), MU));
        assert!(close(m(0, 1.0).capacity(), MU));
        assert!(close(m(3, 1.0).capacity(), 3.0 * MU));
        assert!(close(m(3, 0.5).capacity(), 2.0 * MU));
        assert!(close(m(16, 1.0).capacity(), 96_000.0));
        assert!(close(LoadModel::default().capacity(), MU));
        // No capacity: nothing moves, nothing divides by zero.
        let l = closed_loop(5, Z, 0.0);
        assert_eq!(l.per_client, 0.0);
        assert!(time_for(10.0, 5, Z, 0.0).is_infinite());
    }

    #[test]
    fn cephfs_perf_shape_more_clients_on_one_mds_take_longer_each() {
        // batrick/cephfs-perf kernel-build: 8 clients took 99 min on one MDS, 16 took
        // 323 min; with 3 MDS, 63 and 84 min. The model's shape: per-client time grows
        // with clients on a saturated MDS, and more ranks shorten it.
        let work = 204_000.0;
        let one = LoadModel::default().capacity();
        let three = LoadModel {
            active_mds: 3,
            ..LoadModel::default()
        }
        .capacity();
        let t8 = time_for(work, 8, Z, one);
        let t16 = time_for(work, 16, Z, one);
        let t16_3 = time_for(work, 16, Z, three);
        assert!(t16 > 1.5 * t8, "t8 {t8} t16 {t16}");
        assert!(t16_3 < 0.6 * t16, "t16 {t16} with 3 MDS {t16_3}");
        // Saturated, time is the whole work over mu: 16 clients x 204k / 6k = 544 s.
        assert!(close(t16, 16.0 * work / MU));
        // Alone, a client needs work x (Z + 1/mu): about 5 minutes.
        let alone = time_for(work, 1, Z, one);
        assert!((290.0..310.0).contains(&alone), "{alone}");
    }

    fn check_caps(client_cache: u64, sessions: u64, expected: u64) {
        let c = MdsConfig::default();
        assert_eq!(
            caps_limit_per_client(client_cache, sessions, &c),
            expected,
            "cache {client_cache} sessions {sessions}"
        );
    }

    #[test]
    fn caps_follow_the_client_cache_until_the_mds_recalls_them() {
        // Defaults: a 4 GiB cache of 4 KiB inodes holds 1 Mi inodes.
        let limit = cache_limit_inodes(&MdsConfig::default());
        assert_eq!(limit, 1 << 20);
        check_caps(16_384, 1, 16_384);
        check_caps(16_384, 64, 16_384);
        check_caps(16_384, 1_000, (1 << 20) / 1_000);
        check_caps(16_384, 100_000, 100);
        check_caps(50, 100_000, 50);
        check_caps(u64::MAX, 1, 1 << 20);
    }

    #[test]
    fn memory_counts_sessions_caps_and_cached_inodes() {
        let c = MdsConfig::default();
        assert_eq!(rss_bytes(0, 0, 0, &c), c.base_rss_bytes);
        assert_eq!(
            rss_bytes(10, 100, 1_000, &c),
            c.base_rss_bytes
                + 10 * c.bytes_per_session
                + 100 * c.bytes_per_cap
                + 1_000 * c.bytes_per_inode
        );
        let limit = cache_limit_inodes(&c);
        assert_eq!(cached_inodes(500, 10, &c), 500);
        assert_eq!(cached_inodes(10 * limit, 10, &c), limit);
        // Caps pin their inodes: the cache cannot be trimmed below them.
        assert_eq!(cached_inodes(10 * limit, 2 * limit, &c), 2 * limit);
        assert_eq!(rss_bytes(u64::MAX, u64::MAX, 1, &c), u64::MAX);
    }
}
