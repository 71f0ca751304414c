//! Prometheus metrics of one service (one registry per instance: the harness may run
//! several). Label values come from the fake's own vocabulary: request paths are reduced
//! to templates whose unknown segments become `{id}`, so network input cannot grow the
//! label set.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    kind: &'static str,
    result: &'static str,
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    transitions: Family<TransitionLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Path segments kept as they are in a route template.
const WORDS: &[&str] = &[
    "v2",
    "v3",
    "shares",
    "detail",
    "action",
    "export_locations",
    "metadata",
    "snapshots",
    "export-locations",
    "share-access-rules",
    "types",
    "default",
    "extra_specs",
    "quota-sets",
    "os-quota-sets",
    "defaults",
    "limits",
    "availability-zones",
    "os-availability-zone",
    "messages",
    "auth",
    "tokens",
    "projects",
    "catalog",
];

/// The route template of a path: known words kept, anything else `{id}`, at most five
/// segments.
pub fn route_template(path: &str) -> String {
    let mut out = String::new();
    for (i, seg) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if i == 5 {
            out.push_str("/...");
            break;
        }
        out.push('/');
        out.push_str(if WORDS.contains(&seg) { seg } else { "{id}" });
    }
    if out.is_empty() { "/".into() } else { out }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fake_manila");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_02, 4.0, 10))
        });
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "requests",
            "Manila API requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "request_seconds",
            "Time to answer a Manila API request, by route template",
            latency.clone(),
        );
        registry.register(
            "transitions",
            "Asynchronous transitions finished, by kind and result",
            transitions.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            transitions,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, path: &str, status: u16, took: Duration) {
        let route = route_template(path);
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.clone(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// Counts one finished transition (`kind`: create, delete, extend, shrink,
    /// access_apply, access_deny, snapshot_create, snapshot_delete; `result`: ok, error).
    pub fn transition(&self, kind: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.transitions
            .get_or_create(&TransitionLabels { kind, result })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, expected: &str) {
        assert_eq!(route_template(path), expected, "{path}");
    }

    #[test]
    fn templates() {
        check("/", "/");
        check("/v2/shares", "/v2/shares");
        check("/v2/shares/3f1c/action", "/v2/shares/{id}/action");
        check("/v2/abc123/shares/detail", "/v2/{id}/shares/detail");
        check(
            "/v2/shares/x/metadata/k/extra",
            "/v2/shares/{id}/metadata/{id}/...",
        );
        check("/etc/passwd", "/{id}/{id}");
    }
}
