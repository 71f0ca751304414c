//! The load generator: drives one CSI RPC (or one fixed sequence of RPCs) against any
//! CSI endpoint from N concurrent workers, for a duration or a number of operations,
//! and reports throughput, latency percentiles (HdrHistogram, microseconds) and
//! errors by gRPC code, as text or JSON.
//!
//! Start at [`run_load`]; the operations and their per-worker setup are in [`op`].

pub(crate) mod op;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;

use crate::client::endpoint::Channels;
use crate::client::input::{Secrets, load_params_or_empty};
use crate::client::scratch::remove_scratch;
use crate::client::unique;
pub use op::Rpc;

/// `harness load`: drive one RPC against a CSI endpoint and measure it.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The driver's endpoint: unix:///path.sock, /path.sock, dns:///host:port or tcp://host:port.
    #[arg(long, env = "CSI_ENDPOINT")]
    pub endpoint: String,
    /// A separate endpoint for the Controller service.
    #[arg(long, env = "CSI_CONTROLLER_ENDPOINT")]
    pub controller_endpoint: Option<String>,
    /// What one operation is. Identity: Probe, GetPluginInfo, GetPluginCapabilities.
    /// Controller: ControllerGetCapabilities, CreateVolume+DeleteVolume, ListVolumes,
    /// GetCapacity, CreateSnapshot+DeleteSnapshot. Node: NodeGetCapabilities, NodeGetInfo,
    /// NodeStage+NodePublish+NodeUnpublish+NodeUnstage (NodeCycle), NodeGetVolumeStats.
    #[arg(long, value_parser = op::parse_rpc)]
    pub rpc: Rpc,
    /// Concurrent workers, each with one call in flight.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// How long to run: `500ms`, `10s`, `2m` (default 10s unless --count is given).
    #[arg(long, value_parser = parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// How many operations to run, over all workers.
    #[arg(long)]
    pub count: Option<u64>,
    /// CreateVolume parameters (flat YAML `key: value` or JSON), as for `conformance`.
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Secrets (csi-sanity's YAML with per-RPC maps, or JSON), as for `conformance`.
    #[arg(long)]
    pub secrets: Option<PathBuf>,
    /// For node operations on a node-only endpoint: an existing volume to stage and publish.
    #[arg(long)]
    pub volume_id: Option<String>,
    /// The volume context of --volume-id (flat YAML or JSON).
    #[arg(long)]
    pub volume_context: Option<PathBuf>,
    /// Where workers make their staging and target directories (default: a new one in $TMPDIR).
    #[arg(long)]
    pub mount_dir: Option<PathBuf>,
    /// Size of created volumes, bytes.
    #[arg(long, default_value_t = 1024 * 1024 * 1024)]
    pub volume_size: i64,
    /// Deadline of every call, seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// Arguments with every default, for `endpoint` and `rpc`.
    pub fn new(endpoint: impl Into<String>, rpc: Rpc) -> Self {
        Self {
            endpoint: endpoint.into(),
            controller_endpoint: None,
            rpc,
            concurrency: 1,
            duration: None,
            count: None,
            params: None,
            secrets: None,
            volume_id: None,
            volume_context: None,
            mount_dir: None,
            volume_size: 1024 * 1024 * 1024,
            timeout: 60,
            json: false,
        }
    }
}

/// `500ms`, `10s`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, ""), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?}: expected e.g. 500ms, 10s, 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "bad duration unit {unit:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub rpc: Rpc,
    pub concurrency: usize,
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub errors: u64,
    pub elapsed: Duration,
    /// Successful operations per second.
    pub throughput: f64,
    /// Of the successful operations.
    pub latency: Latency,
    /// Failed operations by gRPC code name.
    pub errors_by_code: BTreeMap<String, u64>,
    /// A few error messages, for the reader.
    pub sample_errors: Vec<String>,
}

impl LoadReport {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rpc": self.rpc.name(),
            "concurrency": self.concurrency,
            "ok": self.ok,
            "errors": self.errors,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput,
            "latency_us": {
                "p50": self.latency.p50,
                "p90": self.latency.p90,
                "p99": self.latency.p99,
                "max": self.latency.max,
                "mean": self.latency.mean,
            },
            "errors_by_code": self.errors_by_code,
            "sample_errors": self.sample_errors,
        })
    }

    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} × {} workers: {} ok, {} errors in {:.2?} — {:.1} ops/s",
            self.rpc.name(),
            self.concurrency,
            self.ok,
            self.errors,
            self.elapsed,
            self.throughput
        );
        let l = &self.latency;
        let _ = writeln!(
            o,
            "latency µs: p50 {}  p90 {}  p99 {}  max {}  mean {:.0}",
            l.p50, l.p90, l.p99, l.max, l.mean
        );
        for (code, n) in &self.errors_by_code {
            let _ = writeln!(o, "errors {code}: {n}");
        }
        for e in &self.sample_errors {
            let _ = writeln!(o, "  e.g. {e}");
        }
        o
    }
}

/// Runs the load, prints the report; non-zero exit when any operation failed.
pub async fn run_load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    let report = load(args).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the load and returns what it measured (no printing).
pub async fn load(args: LoadArgs) -> anyhow::Result<LoadReport> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.count == Some(0) {
        bail!("--count must be at least 1");
    }
    let timeout = Duration::from_secs(args.timeout);
    let channels = Channels::connect(&args.endpoint, args.controller_endpoint.as_deref(), timeout)?;
    let (base, made_base) = scratch_base(args.mount_dir.as_deref())?;
    let env = Arc::new(op::Env {
        rpc: args.rpc,
        identity: driver::csi::v1::identity_client::IdentityClient::new(channels.node.clone()),
        controller: driver::csi::v1::controller_client::ControllerClient::new(channels.controller),
        node: driver::csi::v1::node_client::NodeClient::new(channels.node),
        params: load_params_or_empty(args.params.as_deref())?,
        secrets: Secrets::load_or_empty(args.secrets.as_deref())?,
        volume_id: args.volume_id.clone(),
        volume_context: load_params_or_empty(args.volume_context.as_deref())?,
        volume_size: args.volume_size,
        base: base.clone(),
    });
    let plan = op::Plan::discover(&env).await?;

    // Every worker sets up before the clock starts.
    let workers = match set_up_workers(&env, &plan, args.concurrency).await {
        Ok(w) => w,
        Err(e) => {
            if made_base {
                let _ = remove_scratch(&base);
            }
            return Err(e);
        }
    };

    let issued = Arc::new(AtomicU64::new(0));
    let count = args.count;
    let duration = if count.is_some() {
        None
    } else {
        Some(args.duration.unwrap_or(Duration::from_secs(10)))
    };
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let mut set = tokio::task::JoinSet::new();
    for w in workers {
        set.spawn(drive(w, issued.clone(), count, deadline));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let mut errors_by_code = BTreeMap::new();
    let mut sample_errors = Vec::new();
    let mut stopped = started;
    while let Some(r) = set.join_next().await {
        let (h, e, s, t) = r.context("a load worker panicked")?;
        stopped = stopped.max(t);
        hist.add(&h).context("merging histograms")?;
        for (k, v) in e {
            *errors_by_code.entry(k).or_insert(0) += v;
        }
        sample_errors.extend(s);
    }
    // The clock stops when the last worker stops issuing (teardowns excluded).
    let elapsed = stopped - started;
    sample_errors.truncate(5);
    if made_base {
        let _ = remove_scratch(&base);
    }
    let ok = hist.len();
    let errors = errors_by_code.values().sum();
    Ok(LoadReport {
        rpc: args.rpc,
        concurrency: args.concurrency,
        ok,
        errors,
        elapsed,
        throughput: ok as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: if ok == 0 {
            Latency::default()
        } else {
            Latency {
                p50: hist.value_at_quantile(0.50),
                p90: hist.value_at_quantile(0.90),
                p99: hist.value_at_quantile(0.99),
                max: hist.max(),
                mean: hist.mean(),
            }
        },
        errors_by_code,
        sample_errors,
    })
}

/// A new scratch base for the workers' directories, or `mount_dir`; created, and
/// whether the load made it (and removes it at the end).
fn scratch_base(mount_dir: Option<&std::path::Path>) -> anyhow::Result<(PathBuf, bool)> {
    let (d, made) = match mount_dir {
        Some(d) => (d.to_path_buf(), false),
        None => (std::env::temp_dir().join(unique("csi-load")), true),
    };
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok((d, made))
}

/// Sets up `n` workers; when one fails, the ones set up are torn down.
async fn set_up_workers(
    env: &Arc<op::Env>,
    plan: &op::Plan,
    n: usize,
) -> anyhow::Result<Vec<op::Worker>> {
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        match op::Worker::setup(env.clone(), plan.clone(), i).await {
            Ok(w) => workers.push(w),
            Err(e) => {
                for w in workers {
                    w.teardown().await;
                }
                return Err(e.context(format!("setting up worker {i}")));
            }
        }
    }
    Ok(workers)
}

/// What one worker measured: its latencies, its errors by code, up to 3 of their
/// messages, and when it stopped issuing.
type WorkerResult = (Histogram<u64>, BTreeMap<String, u64>, Vec<String>, Instant);

/// Runs worker `w` until `count` operations were issued over all workers (`issued`
/// counts them) or `deadline`, then tears it down.
async fn drive(
    mut w: op::Worker,
    issued: Arc<AtomicU64>,
    count: Option<u64>,
    deadline: Option<Instant>,
) -> WorkerResult {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut samples = Vec::new();
    loop {
        if let Some(n) = count {
            if issued.fetch_add(1, Ordering::Relaxed) >= n {
                break;
            }
        } else if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let t = Instant::now();
        match w.run().await {
            Ok(()) => {
                let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                hist.saturating_record(us.max(1));
            }
            Err(e) => {
                *errors.entry(format!("{:?}", e.status.code())).or_default() += 1;
                if samples.len() < 3 {
                    samples.push(format!(
                        "{}: {:?}: {}",
                        e.step,
                        e.status.code(),
                        e.status.message()
                    ));
                }
            }
        }
    }
    let stopped = Instant::now();
    w.teardown().await;
    (hist, errors, samples, stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str, expected: Option<Duration>) {
        assert_eq!(parse_duration(s).ok(), expected, "{s}");
    }

    #[test]
    fn durations() {
        check("10s", Some(Duration::from_secs(10)));
        check("10", Some(Duration::from_secs(10)));
        check("500ms", Some(Duration::from_millis(500)));
        check("2m", Some(Duration::from_secs(120)));
        check("1h", Some(Duration::from_secs(3600)));
        check("1.5s", Some(Duration::from_millis(1500)));
        check("0s", None);
        check("s", None);
        check("10x", None);
        check("", None);
    }
}
