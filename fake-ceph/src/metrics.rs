//! Prometheus metrics of one fake cluster (one registry per cluster: the harness runs
//! several). Label values are command prefixes from the fake's own table, never
//! request input, so cardinality stays bounded.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::mds::Mds;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    prefix: String,
    ret: i64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PrefixLabel {
    prefix: String,
}

/// The cluster's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    commands: Family<CommandLabels, Counter>,
    latency: Family<PrefixLabel, Histogram>,
    sessions: Gauge<u64, AtomicU64>,
    hcr: Gauge<u64, AtomicU64>,
    caps: Gauge<u64, AtomicU64>,
    inodes: Gauge<u64, AtomicU64>,
    rss: Gauge<u64, AtomicU64>,
    subvolumes: Gauge<u64, AtomicU64>,
    purge_pending: Gauge<u64, AtomicU64>,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fake_ceph");
        let commands = Family::<CommandLabels, Counter>::default();
        let latency = Family::<PrefixLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
        });
        let g = Gauge::<u64, AtomicU64>::default;
        let (sessions, hcr, caps, inodes, rss, subvolumes, purge_pending) =
            (g(), g(), g(), g(), g(), g(), g());
        registry.register(
            "commands",
            "Commands answered, by prefix and return code",
            commands.clone(),
        );
        registry.register(
            "command_seconds",
            "Time to answer a command, by prefix",
            latency.clone(),
        );
        registry.register("mds_sessions", "Open MDS client sessions", sessions.clone());
        registry.register(
            "mds_handle_client_request",
            "mds_server.handle_client_request so far",
            hcr.clone(),
        );
        registry.register("mds_caps", "Capabilities held by clients", caps.clone());
        registry.register(
            "mds_inodes",
            "Inodes in the MDS cache (model)",
            inodes.clone(),
        );
        registry.register(
            "mds_rss_estimate_bytes",
            "MDS memory estimate of the model",
            rss.clone(),
        );
        registry.register(
            "subvolumes",
            "Subvolumes in all file systems",
            subvolumes.clone(),
        );
        registry.register(
            "purge_pending",
            "Removed subvolumes waiting to be purged",
            purge_pending.clone(),
        );
        Self {
            registry,
            commands,
            latency,
            sessions,
            hcr,
            caps,
            inodes,
            rss,
            subvolumes,
            purge_pending,
        }
    }

    /// Counts one answered command.
    pub fn command_done(&self, prefix: &'static str, ret: i32, took: Duration) {
        self.commands
            .get_or_create(&CommandLabels {
                prefix: prefix.to_owned(),
                ret: i64::from(ret),
            })
            .inc();
        self.latency
            .get_or_create(&PrefixLabel {
                prefix: prefix.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with gauges read now: the MDS's figures, how many subvolumes
    /// exist and how many removed ones wait to be purged.
    pub fn render(&self, mds: &Mds, subvolumes: usize, purge_pending: usize) -> String {
        self.sessions.set(mds.session_count() as u64);
        self.hcr.set(mds.handle_client_request());
        self.caps.set(mds.caps());
        self.inodes.set(mds.inodes());
        self.rss.set(mds.rss_estimate());
        self.subvolumes.set(subvolumes as u64);
        self.purge_pending.set(purge_pending as u64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
