//! Prometheus metrics of one driver instance (one registry per instance: the harness runs
//! many): RPCs by method and gRPC code, and their latency; Ceph admin calls by command
//! prefix and outcome, and their latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    call: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    mounter: &'static str,
    op: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountOpLabels {
    mounter: &'static str,
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabel {
    call: String,
}

/// The gRPC code's name as metrics label it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The driver's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    rpcs: Family<RpcLabels, Counter>,
    latency: Family<MethodLabel, Histogram>,
    backend: Family<BackendLabels, Counter>,
    backend_latency: Family<CallLabel, Histogram>,
    mounts: Family<MountLabels, Counter>,
    mount_latency: Family<MountOpLabels, Histogram>,
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cephfs_csi");
        let rpcs = Family::<RpcLabels, Counter>::default();
        let latency = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 4.0, 12))
        });
        registry.register(
            "rpcs",
            "CSI RPCs answered, by method and gRPC code",
            rpcs.clone(),
        );
        registry.register("rpc_seconds", "Time to answer a CSI RPC", latency.clone());
        let backend = Family::<BackendLabels, Counter>::default();
        let backend_latency = Family::<CallLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 4.0, 12))
        });
        registry.register(
            "backend_calls",
            "Ceph admin calls, by command prefix and result (ok, or the error's kind)",
            backend.clone(),
        );
        registry.register(
            "backend_seconds",
            "Time a Ceph admin call took",
            backend_latency.clone(),
        );
        let mounts = Family::<MountLabels, Counter>::default();
        let mount_latency = Family::<MountOpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 4.0, 12))
        });
        registry.register(
            "mounts",
            "Mounter operations (mount, bind, unmount), by mounter and result (ok or error)",
            mounts.clone(),
        );
        registry.register(
            "mount_seconds",
            "Time a mounter operation took",
            mount_latency.clone(),
        );
        Self {
            registry,
            rpcs,
            latency,
            backend,
            backend_latency,
            mounts,
            mount_latency,
        }
    }

    /// Counts one RPC.
    pub fn rpc(&self, method: &'static str, code: tonic::Code, took: Duration) {
        self.rpcs
            .get_or_create(&RpcLabels {
                method,
                code: code_name(code),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabel { method })
            .observe(took.as_secs_f64());
    }

    /// Counts one Ceph admin call. `call` is the command prefix (a bounded set: the
    /// driver's own commands); `result` is `ok` or the error's kind.
    pub fn backend(&self, call: &str, result: &'static str, took: Duration) {
        self.backend
            .get_or_create(&BackendLabels {
                call: call.to_owned(),
                result,
            })
            .inc();
        self.backend_latency
            .get_or_create(&CallLabel {
                call: call.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one mounter operation.
    pub fn mount(&self, mounter: &'static str, op: &'static str, ok: bool, took: Duration) {
        self.mounts
            .get_or_create(&MountLabels {
                mounter,
                op,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        self.mount_latency
            .get_or_create(&MountOpLabels { mounter, op })
            .observe(took.as_secs_f64());
    }

    /// The text exposition.
    pub fn render(&self) -> String {
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
