//! The MDS load model: how fast the active MDS ranks serve client requests, how long a
//! reply takes under load, and how many capabilities and cached inodes (hence how much
//! memory) the clients make it hold. Pure functions of the model's parameters, so that a
//! simulator can integrate them over its own clock and charge the results to the
//! counters ([`crate::mount::Mount::charge_modelled`]).
//!
//! The request model is a closed system, the shape of a metadata benchmark in which each
//! client keeps one request outstanding: a client thinks for `Z` seconds (its own work
//! per request: FUSE, network, data), then waits for the MDS. With `N` clients and a
//! capacity of `mu` requests per second, the asymptotic bounds give the throughput
//! `X = min(N / (Z + 1/mu), mu)`; each client progresses at `X / N`, and the reply
//! latency is `N / X - Z` (the response-time law), which stays at the service time
//! `1/mu` below saturation and grows linearly with `N` beyond it ([`closed_loop`]).
//!
//! Clients that differ ([`closed_loop_mixed`]): client `i` keeps `c_i` requests in flight
//! on average and thinks `Z_i` between them, so it completes `x_i = c_i / (Z_i + R)`
//! requests per second, `R` being the reply latency all clients see. Below saturation
//! `R = 1/mu`; beyond it `R` is the root of `sum x_i = mu`, and the rates are scaled to
//! sum to `mu` exactly. A slow client (large `Z_i`) loses little once `R` dwarfs `Z_i`;
//! a client with more in flight keeps its larger share of a saturated MDS. With equal
//! clients this is [`closed_loop`].
//!
//! Cache pressure ([`LoadModel::effective_capacity`]). The clients' working set is the
//! caps they would hold unrecalled (each client's cache, at most
//! `mds_max_caps_per_client`, at most the inodes it has); each active rank caches
//! `mds_cache_memory_limit / bytes_per_inode` of them. Beyond that, at pressure
//! `rho = working set / (ranks x cache) > 1`, a fraction `1 - 1/rho` of the requests
//! miss the MDS cache (an LRU over a working set touched evenly) and each such request
//! costs `1 + k` services instead of one: dirfrag fetches from the metadata pool, caps
//! recalled and re-granted. Capacity falls to `mu / (1 + k (1 - 1/rho))`, at worst
//! `mu / (1 + k)`; `k` is [`LoadModel::cache_miss_penalty`].
//!
//! Anchors (the repository's CALIBRATION.md, Sources 6): about 6,000 cache-missed
//! requests per second per MDS (Yan Zheng; `mu`); more than 100k creates/s from 16
//! active MDS, roughly linear scaling (`multi_mds_efficiency` 1.0); cache thrash can
//! take an MDS below 100 requests/s (so `k` up to about 60 is not absurd). cephfs-perf's
//! kernel build on 1-core MDS: 8 clients 99 min and 16 clients 323 min on one MDS, 63
//! and 84 min on three. `k = 2.75` is fitted to those ratios, with the untar's client
//! (`Z` = 1.35 ms) on an MDS whose cache holds 100,000 inodes (Jewel's `mds_cache_size`
//! default; the 2 GB VMs' real setting is not published) and 16,384 caps wanted per
//! client, so that the caps fill one rank's cache at 6.1 clients:
//!
//! | ratio | measured | model |
//! |---|---|---|
//! | 16 / 8 clients, 1 MDS | 3.26 | 3.27 |
//! | 8 clients, 1 / 3 MDS | 1.57 | 1.57 |
//! | 16 / 8 clients, 3 MDS | 1.33 | 1.00 |
//! | 16 clients, 1 / 3 MDS | 3.85 | 5.13 |
//!
//! The last two are not fitted: with three ranks scaling linearly, 16 untar clients
//! neither saturate them nor overflow their caches, so both counts take the unloaded
//! time on three ranks, and one rank's loss at 16 clients shows in full.
//! Three ranks serving the kernel build at about 1.4 ranks' worth (`multi_mds_efficiency`
//! 0.2, Luminous's balancer) would fit it too, but that contradicts the mdtest anchor,
//! so the default keeps linear scaling. `k` was fitted together with the cache the
//! anchors had (unknown): with the fake's default 4 GiB cache (1 Mi inodes) the same
//! clients overflow it only beyond 64 per rank.
//!
//! Memory follows the fake's per-session, per-cap and per-inode estimates
//! ([`MdsConfig`]); the inode cache is held to `mds_cache_memory_limit` by recalling
//! caps, down to `mds_min_caps_per_client`.

use serde::{Deserialize, Serialize};

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
    /// `k`: what a request that misses the MDS cache costs beyond a hit, in services
    /// (0: no cache-pressure effect). Fitted to cephfs-perf's kernel build (see the
    /// module doc).
    pub cache_miss_penalty: f64,
}

impl Default for LoadModel {
    fn default() -> Self {
        Self {
            requests_per_s_per_mds: 6_000.0,
            active_mds: 1,
            multi_mds_efficiency: 1.0,
            cache_miss_penalty: 2.75,
        }
    }
}

impl LoadModel {
    /// Requests per second all active ranks serve together.
    pub fn capacity(&self) -> f64 {
        let extra = f64::from(self.active_mds.max(1) - 1) * self.multi_mds_efficiency.max(0.0);
        self.requests_per_s_per_mds.max(0.0) * (1.0 + extra)
    }

    /// `rho`: the clients' working set (`working_set_inodes`, the caps they would hold
    /// unrecalled) over what the active ranks' caches hold together, each
    /// [`cache_limit_inodes`] of `c`.
    pub fn cache_pressure(&self, working_set_inodes: f64, c: &MdsConfig) -> f64 {
        let cache = cache_limit_inodes(c) as f64 * f64::from(self.active_mds.max(1));
        if working_set_inodes.is_finite() && working_set_inodes > 0.0 {
            working_set_inodes / cache
        } else {
            0.0
        }
    }

    /// How much slower the ranks serve at cache pressure `rho`: `1 + k (1 - 1/rho)`
    /// beyond a full cache, 1 within it.
    pub fn cache_slowdown(&self, rho: f64) -> f64 {
        let k = if self.cache_miss_penalty.is_finite() {
            self.cache_miss_penalty.max(0.0)
        } else {
            0.0
        };
        1.0 + k * miss_fraction(rho)
    }

    /// Requests per second the active ranks serve with the clients' working set at
    /// `working_set_inodes`: [`LoadModel::capacity`] over the cache slowdown.
    pub fn effective_capacity(&self, working_set_inodes: f64, c: &MdsConfig) -> f64 {
        self.capacity() / self.cache_slowdown(self.cache_pressure(working_set_inodes, c))
    }
}

/// The fraction of requests that miss the MDS cache at pressure `rho`: `1 - 1/rho`
/// beyond a full cache (an LRU over a working set touched evenly), none within it.
pub fn miss_fraction(rho: f64) -> f64 {
    if rho > 1.0 && rho.is_finite() {
        1.0 - 1.0 / rho
    } else if rho == f64::INFINITY {
        1.0
    } else {
        0.0
    }
}

/// Caps one client would hold unrecalled: its cache (`client_cache_inodes`), at most
/// `mds_max_caps_per_client`, at most the `inodes` it has. Its share of the working set.
pub fn caps_wanted(client_cache_inodes: u64, inodes: u64, c: &MdsConfig) -> u64 {
    client_cache_inodes.min(c.max_caps_per_client).min(inodes)
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

/// Clients alike: how many, the requests each keeps in flight on average, and the
/// time each thinks between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clients {
    /// How many.
    pub count: usize,
    /// `c`: requests in flight, on average (1 for a client that waits for each reply).
    pub in_flight: f64,
    /// `Z`: seconds of the client's own time per request.
    pub think_s: f64,
}

/// `groups` of clients against an MDS serving `capacity` requests per second (see the
/// module doc): the load, with `per_client` the mean `X / N`, and the requests per second
/// each client of each group completes. The clients' rates sum to the throughput. No
/// clients (or no capacity): nothing moves.
pub fn closed_loop_mixed(groups: &[Clients], capacity: f64) -> (Load, Vec<f64>) {
    let n: usize = groups
        .iter()
        .map(|g| g.count)
        .fold(0, usize::saturating_add);
    if n == 0 || capacity <= 0.0 || !capacity.is_finite() {
        let load = Load {
            throughput: 0.0,
            per_client: 0.0,
            reply_latency_s: 0.0,
            saturated: n > 0,
        };
        return (load, vec![0.0; groups.len()]);
    }
    // Sanitised: a client keeps some request in flight, and thinks no negative time.
    let c = |g: &Clients| {
        if g.in_flight.is_finite() && g.in_flight > 0.0 {
            g.in_flight.clamp(1e-9, 1e9)
        } else {
            1.0
        }
    };
    let z = |g: &Clients| {
        if g.think_s.is_finite() {
            g.think_s.max(0.0)
        } else {
            0.0
        }
    };
    // The clients' demand at reply latency `r`, and its derivative.
    let demand = |r: f64| -> (f64, f64) {
        groups.iter().fold((0.0, 0.0), |(d, dd), g| {
            let k = g.count as f64 * c(g);
            let t = z(g) + r;
            (d + k / t, dd - k / (t * t))
        })
    };
    let service = 1.0 / capacity;
    let (open, _) = demand(service);
    let saturated = open > capacity;
    let reply = if saturated {
        // `demand` is convex and falls with `r`: Newton's method from the left (the
        // service time) stays left of the root and climbs to it. The root lies below
        // `sum c / mu`, where even with no think time the demand is `mu`.
        let hi = groups.iter().map(|g| g.count as f64 * c(g)).sum::<f64>() / capacity;
        let mut r = service;
        for _ in 0..200 {
            let (d, dd) = demand(r);
            if dd >= 0.0 || !dd.is_finite() {
                break;
            }
            let next = (r - (d - capacity) / dd).clamp(r, hi.max(r));
            if next - r <= 1e-14 * next {
                r = next;
                break;
            }
            r = next;
        }
        r
    } else {
        service
    };
    let (d, _) = demand(reply);
    // Scaled so that the rates sum to `X` (they do up to the root's rounding).
    let (throughput, scale) = if saturated && d > 0.0 {
        (capacity, capacity / d)
    } else {
        (d, 1.0)
    };
    let rates = groups
        .iter()
        .map(|g| c(g) / (z(g) + reply) * scale)
        .collect();
    let load = Load {
        throughput,
        per_client: throughput / n as f64,
        reply_latency_s: reply,
        saturated,
    };
    (load, rates)
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

/// The MDS model's parameters. Memory figures are estimates used for `mds_mem` and the
/// `rss` counter; they are not measurements of a real MDS. The request capacity and the
/// cache bound are the load model's (this module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MdsConfig {
    /// RSS of an idle MDS.
    pub base_rss_bytes: u64,
    /// Memory per open session.
    pub bytes_per_session: u64,
    /// Memory per capability held by clients.
    pub bytes_per_cap: u64,
    /// Memory per inode in cache.
    pub bytes_per_inode: u64,
    /// Ceph's `mds_max_caps_per_client`.
    pub max_caps_per_client: u64,
    /// Ceph's `mds_min_caps_per_client`: recall never goes below it.
    pub min_caps_per_client: u64,
    /// Ceph's `mds_cache_memory_limit` (4 GiB in 16.2; 1 GiB in Luminous): the inode
    /// cache is trimmed, and caps recalled, to stay within it.
    pub cache_memory_limit_bytes: u64,
    /// Request capacity of the active ranks.
    pub load: LoadModel,
    /// `f_bsize` reported by statfs (ceph-fuse reports 4 MiB).
    pub statfs_block_size: u64,
}

impl Default for MdsConfig {
    fn default() -> Self {
        Self {
            base_rss_bytes: 32 << 20,
            bytes_per_session: 16 << 10,
            bytes_per_cap: 512,
            bytes_per_inode: 4 << 10,
            max_caps_per_client: 1 << 20,
            min_caps_per_client: 100,
            cache_memory_limit_bytes: 4 << 30,
            load: LoadModel::default(),
            statfs_block_size: 4 << 20,
        }
    }
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
            ..LoadModel::default()
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

    /// The busy workload's client: 1.3 ms per request plus 1 GB at 100 MB/s spread over
    /// its 204,000 requests.
    const Z_UNTAR: f64 = 0.0013 + 10.0 / 204_000.0;

    /// cephfs-perf's MDS for the fit: a cache of 100,000 inodes.
    fn cephfs_perf_mds() -> MdsConfig {
        let c = MdsConfig::default();
        MdsConfig {
            cache_memory_limit_bytes: 100_000 * c.bytes_per_inode,
            ..c
        }
    }

    /// Seconds per request of one of `clients` untar
    /// clients on `ranks` ranks of cephfs-perf's MDS, cache pressure included.
    fn per_request_s(clients: usize, ranks: u32, m: &LoadModel) -> f64 {
        let c = cephfs_perf_mds();
        let m = LoadModel {
            active_mds: ranks,
            ..*m
        };
        let ws = clients as f64 * caps_wanted(16_384, 69_500, &c) as f64;
        time_for(1.0, clients, Z_UNTAR, m.effective_capacity(ws, &c))
    }

    #[test]
    fn cache_pressure_fits_cephfs_perf_kernel_build_ratios() {
        // Measured: 8 clients 99 min, 16 clients 323 min on one MDS; 63 and 84 min on
        // three. The model fits the first two ratios within 5 %, and not the others
        // (see the module doc): it is asserted where it stands, to catch a change.
        let m = LoadModel::default();
        let t = |n, r| per_request_s(n, r, &m);
        let within = |got: f64, want: f64, tol: f64| (got / want - 1.0).abs() <= tol;
        let one = t(16, 1) / t(8, 1);
        assert!(within(one, 323.0 / 99.0, 0.05), "16/8 on 1 MDS: {one}");
        let eight = t(8, 1) / t(8, 3);
        assert!(within(eight, 99.0 / 63.0, 0.05), "8 on 1/3 MDS: {eight}");
        let three = t(16, 3) / t(8, 3);
        assert!((1.0..1.05).contains(&three), "16/8 on 3 MDS: {three}");
        let sixteen = t(16, 1) / t(16, 3);
        assert!((4.5..5.5).contains(&sixteen), "16 on 1/3 MDS: {sixteen}");
        // The pressure is what bends the curve: without it 16 clients take 1.8x.
        let flat = LoadModel {
            cache_miss_penalty: 0.0,
            ..m
        };
        let ratio = per_request_s(16, 1, &flat) / per_request_s(8, 1, &flat);
        assert!((1.7..1.9).contains(&ratio), "{ratio}");
        // Ranks that scale poorly for this workload (Luminous's balancer) fit the
        // third ratio too, at the cost of the mdtest anchor.
        let poor = LoadModel {
            multi_mds_efficiency: 0.2,
            ..m
        };
        let three = per_request_s(16, 3, &poor) / per_request_s(8, 3, &poor);
        assert!(within(three, 84.0 / 63.0, 0.05), "{three}");
    }

    #[test]
    fn capacity_falls_with_the_working_set_beyond_the_cache_to_mu_over_one_plus_k() {
        let c = MdsConfig::default();
        let m = LoadModel::default();
        let cache = cache_limit_inodes(&c) as f64;
        assert!(close(m.effective_capacity(0.0, &c), MU));
        assert!(close(m.effective_capacity(cache, &c), MU));
        // Twice the cache: half the requests miss, each costing 1 + k services.
        let k = m.cache_miss_penalty;
        assert!(close(
            m.effective_capacity(2.0 * cache, &c),
            MU / (1.0 + k / 2.0)
        ));
        // Falls monotonically, never below mu / (1 + k).
        let mut last = MU;
        for x in [1.5, 3.0, 10.0, 1e3, 1e9] {
            let now = m.effective_capacity(x * cache, &c);
            assert!(now < last && now > MU / (1.0 + k), "{x}: {now}");
            last = now;
        }
        // Each rank brings its own cache.
        let three = LoadModel { active_mds: 3, ..m };
        assert!(close(three.effective_capacity(3.0 * cache, &c), 3.0 * MU));
        // busy-1k: 1,000 clients wanting 16,384 caps each in a 1 Mi-inode cache.
        let ws = 1_000.0 * caps_wanted(16_384, 69_500, &c) as f64;
        let busy = m.effective_capacity(ws, &c);
        assert!((1_600.0..1_800.0).contains(&busy), "{busy}");
        // Nonsense in, no panic and no capacity gained.
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            let odd = LoadModel {
                cache_miss_penalty: bad,
                ..m
            };
            assert!(odd.effective_capacity(ws, &c) <= MU);
            assert!(m.effective_capacity(bad, &c) <= MU);
        }
        assert!(close(m.effective_capacity(f64::MAX, &c), MU / (1.0 + k)));
        assert_eq!(caps_wanted(16_384, 100, &c), 100);
        assert_eq!(caps_wanted(u64::MAX, u64::MAX, &c), c.max_caps_per_client);
    }

    fn alike(count: usize, in_flight: f64, think_s: f64) -> Clients {
        Clients {
            count,
            in_flight,
            think_s,
        }
    }

    #[test]
    fn mixed_clients_alike_are_the_closed_loop_and_rates_always_sum_to_x() {
        for n in [1, 4, 8, 9, 10, 100, 1_000, 100_000] {
            let one = closed_loop(n, Z, MU);
            // The same clients, in one group or split into several.
            for groups in [
                vec![alike(n, 1.0, Z)],
                vec![
                    alike(n / 2, 1.0, Z),
                    alike(0, 3.0, 1.0),
                    alike(n - n / 2, 1.0, Z),
                ],
            ] {
                let (l, rates) = closed_loop_mixed(&groups, MU);
                assert!(close(l.throughput, one.throughput), "{n}: {l:?} {one:?}");
                assert!(close(l.per_client, one.per_client), "{n}");
                assert!(
                    (l.reply_latency_s - one.reply_latency_s).abs() <= 1e-9,
                    "{n}: {l:?} {one:?}"
                );
                assert_eq!(l.saturated, one.saturated);
                let sum: f64 = groups
                    .iter()
                    .zip(&rates)
                    .map(|(g, r)| g.count as f64 * r)
                    .sum();
                assert!(close(sum, l.throughput), "{n}");
            }
        }
        let (l, rates) = closed_loop_mixed(&[], MU);
        assert_eq!((l.throughput, rates.len()), (0.0, 0));
        let (l, rates) = closed_loop_mixed(&[alike(3, 1.0, Z)], 0.0);
        assert_eq!((l.throughput, rates), (0.0, vec![0.0]));
    }

    #[test]
    fn slow_clients_lose_little_to_a_saturated_mds_and_in_flight_sets_the_share() {
        // Alone, a client that thinks four times as long is nearly four times slower.
        let (_, r) = closed_loop_mixed(&[alike(1, 1.0, Z), alike(1, 1.0, 4.0 * Z)], MU);
        assert!(r[0] / r[1] > 3.0, "{r:?}");
        // 1,000 clients on a saturated MDS: the reply latency dwarfs the think time,
        // the slow ones keep nearly their share; two in flight take twice the share.
        let groups = [
            alike(500, 1.0, Z),
            alike(300, 1.0, 4.0 * Z),
            alike(200, 2.0, Z),
        ];
        let (l, r) = closed_loop_mixed(&groups, MU);
        assert!(l.saturated && close(l.throughput, MU), "{l:?}");
        assert!(r[0] / r[1] < 1.05 && r[0] > r[1], "{r:?}");
        assert!((r[2] / r[0] - 2.0).abs() < 1e-2, "{r:?}");
        let sum: f64 = groups.iter().zip(&r).map(|(g, x)| g.count as f64 * x).sum();
        assert!(close(sum, MU));
        // Odd inputs: no panic, nothing negative, the sum still X.
        let odd = [
            alike(5, f64::NAN, -1.0),
            alike(5, f64::INFINITY, f64::INFINITY),
            alike(5, 0.0, 0.0),
            alike(5, 1e300, 1e-300),
        ];
        let (l, r) = closed_loop_mixed(&odd, MU);
        assert!(
            l.throughput.is_finite() && l.throughput <= MU * (1.0 + 1e-9),
            "{l:?}"
        );
        assert!(r.iter().all(|x| x.is_finite() && *x >= 0.0), "{r:?}");
        let sum: f64 = odd.iter().zip(&r).map(|(g, x)| g.count as f64 * x).sum();
        assert!(close(sum, l.throughput), "{sum} {l:?}");
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
