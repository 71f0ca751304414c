//! Where each figure of a run comes from: measured (wall clock, real calls, real
//! counters) or modelled (the simulator's output), and for a modelled one the
//! parameters it rests on, each of which CALIBRATION.md sources. `summary.json` carries
//! the list as `sources`; `report.md` prints it as a table.

use serde::Serialize;

use crate::params::StorageBackend;
use crate::report::Summary;

/// How a figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// Wall clock, real calls, real counters, real Kubernetes programs.
    Measured,
    /// The simulator's model output, on the simulated clock.
    Modelled,
    /// Real events counted (calls the driver answered, requests fake-ceph served),
    /// placed on the simulated clock: the count is measured, its timing modelled.
    MeasuredCountModelledTime,
}

impl How {
    fn text(self) -> &'static str {
        match self {
            How::Measured => "measured",
            How::Modelled => "modelled",
            How::MeasuredCountModelledTime => "measured count, modelled time",
        }
    }
}

/// One figure's source.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// The `summary.json` keys it covers.
    pub figures: &'static str,
    /// How it was obtained.
    pub how: How,
    /// The parameters (`--set` keys) a modelled figure rests on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rests_on: Vec<&'static str>,
}

/// Kubernetes' side of a pod's start: what every start-up time rests on.
const START: &[&str] = &[
    "api_latency",
    "watch_latency",
    "qps.kcm",
    "qps.scheduler",
    "qps.kubelet",
    "node_status_period_s",
    "csi_latency.stage",
    "csi_latency.publish",
    "container_start",
];

/// What attaching adds when the CSIDriver requires it.
const ATTACH: &[&str] = &[
    "qps.attacher",
    "attacher_trivial",
    "adc_serialize_per_volume",
    "attach_timeout_s",
    "adc_verify_period_s",
    "waitforattach_uses_devicepath",
    "csi_latency.publish_controller",
];

/// The scenario's script.
const SCRIPT: &[&str] = &["step", "step_interval_s", "kill_stuck_after_s", "stall_s"];

/// The sources of `s`'s figures.
pub fn sources(s: &Summary) -> Vec<Source> {
    let simulated = s.simulated();
    let attach = s.params.attach_required;
    let modelled = |figures: &'static str, parts: &[&[&'static str]]| {
        if !simulated {
            return Source {
                figures,
                how: How::Measured,
                rests_on: vec![],
            };
        }
        let mut rests_on: Vec<&'static str> = Vec::new();
        for p in parts.iter().flat_map(|p| p.iter().copied()) {
            if !rests_on.contains(&p) {
                rests_on.push(p);
            }
        }
        Source {
            figures,
            how: How::Modelled,
            rests_on,
        }
    };
    let attach_part: &[&str] = if attach { ATTACH } else { &[] };
    let manila_part: &[&str] = if s.params.backend == StorageBackend::Manila {
        &["manila"]
    } else {
        &[]
    };
    let authz: &[&str] = &[
        "authz.lag",
        "authz.read_cost_us",
        "authz.write_base_us",
        "authz.write_per_fanout_us",
    ];
    let mut v = vec![
        modelled(
            "outcome, running, max_running, pods_created, pods_killed, pods_not_running",
            &[START, attach_part, SCRIPT],
        ),
        modelled(
            "provisioned_s, claims",
            &[
                &[
                    "csi_latency.create",
                    "qps.provisioner",
                    "qps.kcm",
                    "api_latency",
                    "watch_latency",
                ],
                manila_part,
            ],
        ),
        modelled(
            "all_running_s, pod_startup, pod_startup_not_running, schedule_to_run, running_curve_s",
            &[START, attach_part],
        ),
        modelled("peak_mds_sessions", &[START, attach_part, &["hold_s"]]),
        modelled("forbidden", &[authz, attach_part, &["api_latency"]]),
        modelled(
            "foreign_device_paths",
            &[attach_part, &["qps.kcm", "node_status_period_s"]],
        ),
        modelled("backoffs", &[START, attach_part]),
        modelled("volume_attachments", &[attach_part]),
        modelled("api_clients", &[&["qps", "api_latency"]]),
        modelled("authz_graph", &[authz]),
        modelled("sim_total_s", &[START, attach_part, SCRIPT, &["hold_s"]]),
    ];
    let counted = if simulated {
        How::MeasuredCountModelledTime
    } else {
        How::Measured
    };
    let durations: Vec<&'static str> = if simulated {
        vec!["csi_latency"]
    } else {
        vec![]
    };
    v.push(Source {
        figures: "rpcs, csi_calls",
        how: counted,
        rests_on: durations,
    });
    v.push(Source {
        figures: "mds_hcr",
        how: counted,
        rests_on: if simulated && s.busy.is_some() {
            vec!["busy"]
        } else {
            vec![]
        },
    });
    if s.busy.is_some() {
        v.push(modelled("busy", &[&["busy"]]));
    }
    v.push(Source {
        figures: "wall, events, leaked_objects, leaks, clean, duplicates",
        how: How::Measured,
        rests_on: vec![],
    });
    v
}

/// `report.md`'s section on where the figures come from.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::from(
        "## Where the figures come from\n\n\
         Parameters are `--set` keys; CALIBRATION.md gives each one's value and source.\n\n\
         | figures (summary.json) | how | rests on |\n|---|---|---|\n",
    );
    for src in sources(s) {
        let on = if src.rests_on.is_empty() {
            "-".to_owned()
        } else {
            src.rests_on
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "| {} | {} | {on} |\n",
            src.figures,
            src.how.text()
        ));
    }
    out.push('\n');
    out
}

/// `summary.json`: the summary with its `sources`.
pub fn json(s: &Summary) -> serde_json::Result<String> {
    let mut v = serde_json::to_value(s)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("sources".into(), serde_json::to_value(sources(s))?);
    }
    serde_json::to_string_pretty(&v)
}
