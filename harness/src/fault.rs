//! Faults injected while a scenario runs: a plan of timed steps (a scenario's
//! `fault_plan`, or one drawn from a seed by [`crate::soak`]) that the simulation applies
//! on its clock, and what the run counted of them.
//!
//! A step is anchored to the start of a phase (the run, the deploy phase, teardown) and
//! fires that many simulated seconds later, if the run gets there. Steps either switch a
//! fault on or off (fake-ceph rules, the MDS, fake-manila's faults: windows, each with an
//! id so that windows of different kinds overlap), act once (evict MDS sessions, reset
//! the shares stuck in `creating` or `error_deleting` to `error` as an operator
//! would), or kill and restart
//! a plugin (the controller or a node plugin: its server is dropped mid-flight, as a
//! kill would drop it, and a new driver instance is started on the same socket and state
//! directory).
//!
//! What a step does to the simulation's view is decided on the simulated clock alone: a
//! kill fails the calls in flight to that plugin with `Unavailable` and every call made
//! to it until the restart, whatever the real calls had done by then (their effects
//! may or may not have reached the back end, as with a real kill). Switching a fault on
//! or off first waits for every real call under way to finish, so each call meets the
//! faults in force when the simulation made it. What stays nondeterministic is named in
//! [`Step::reproducible`].

use serde::{Deserialize, Serialize};

/// One of the driver's plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plugin {
    /// The controller plugin.
    Controller,
    /// The node plugin of node i (0-based, `node-{i+1:04}`).
    Node(usize),
}

impl std::fmt::Display for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Plugin::Controller => f.write_str("controller"),
            Plugin::Node(i) => f.write_str(&crate::naming::node_name(*i)),
        }
    }
}

/// The moment a step's delay counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// The start of the run (claims are being provisioned).
    Start,
    /// The start of the deploy phase (every claim bound).
    Deploy,
    /// The start of teardown.
    Teardown,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Adds fake-ceph fault rules (its `--fault` syntax: `error:<prefix>=<rate>[:errno]`,
    /// `hang:<prefix>`, `latency:<prefix>=<ms>`) as window `window`, beside the
    /// scenario's `ceph_faults` and the other windows.
    CephRulesOn {
        /// The window's id.
        window: u32,
        /// The rules.
        rules: Vec<String>,
    },
    /// Removes window `window`'s rules.
    CephRulesOff {
        /// The window's id.
        window: u32,
    },
    /// Takes the MDS down: session opens time out, client operations and `volumes`
    /// commands fail.
    MdsDown,
    /// Brings the MDS back.
    MdsUp,
    /// Evicts MDS sessions (`tell <fs>:0 session evict`): those of one node, or all.
    Evict {
        /// The node whose sessions go (`client_metadata.hostname`); `None`: all.
        node: Option<usize>,
    },
    /// Sets fake-manila's faults (request errors, shares stuck in `creating`, ...) as
    /// window `window`; the faults in force are the largest of each rate over the
    /// scenario's `manila_faults` and the open windows.
    ManilaFaultsOn {
        /// The window's id.
        window: u32,
        /// The faults.
        faults: fake_manila::Faults,
    },
    /// Closes window `window`.
    ManilaFaultsOff {
        /// The window's id.
        window: u32,
    },
    /// An operator resets every share stuck in `creating` or `error_deleting` to
    /// `error` (Manila's admin `reset_status`), so that the driver can delete it (and,
    /// for a claim still provisioning, make another).
    ResetStuckShares,
    /// Kills a plugin: its server is dropped with the calls under way.
    Kill {
        /// Which.
        plugin: Plugin,
    },
    /// Starts a new driver instance for a killed plugin, on the same socket and state
    /// directory.
    Restart {
        /// Which.
        plugin: Plugin,
    },
    /// Kills the embedded fake-ceph and starts it again on the same data directory and
    /// port, on its durable metadata (a scenario with this step keeps it so; see
    /// `Embedded::restart_ceph` in `csi.rs`). Back-end commands under way are cut.
    RestartCeph,
}

impl Action {
    /// A short name for logs and counts.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CephRulesOn { .. } => "ceph-rules-on",
            Action::CephRulesOff { .. } => "ceph-rules-off",
            Action::MdsDown => "mds-down",
            Action::MdsUp => "mds-up",
            Action::Evict { .. } => "evict",
            Action::ManilaFaultsOn { .. } => "manila-faults-on",
            Action::ManilaFaultsOff { .. } => "manila-faults-off",
            Action::ResetStuckShares => "reset-stuck-shares",
            Action::Kill { .. } => "kill",
            Action::Restart { .. } => "restart",
            Action::RestartCeph => "restart-ceph",
        }
    }

    /// What the action acts on, for the event log.
    pub fn object(&self) -> String {
        match self {
            Action::CephRulesOn { window, .. }
            | Action::CephRulesOff { window }
            | Action::ManilaFaultsOn { window, .. }
            | Action::ManilaFaultsOff { window } => format!("window-{window}"),
            Action::MdsDown | Action::MdsUp => "mds.0".into(),
            Action::Evict { node } => node.map_or("all".into(), crate::naming::node_name),
            Action::ResetStuckShares => "shares".into(),
            Action::Kill { plugin } | Action::Restart { plugin } => plugin.to_string(),
            Action::RestartCeph => "fake-ceph".into(),
        }
    }

    /// Whether the action switches the back end's faults: the real calls under way are
    /// let finish first, so that every call meets the faults in force when it was made.
    /// Kills do not wait: a fake-ceph restart cuts the back-end commands under way as a
    /// plugin kill cuts the CSI calls.
    pub fn quiesces(&self) -> bool {
        !matches!(
            self,
            Action::Kill { .. } | Action::Restart { .. } | Action::RestartCeph
        )
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The phase whose start the delay counts from.
    pub at: Anchor,
    /// Simulated seconds after it.
    pub after_s: f64,
    /// What happens.
    pub action: Action,
}

impl Step {
    /// Whether the step keeps the event log fixed by the seed. Everything the
    /// simulation sees of a step is decided on its clock, except for random draws the
    /// fakes make in the order requests reach them: an error rate (fake-ceph or
    /// fake-manila) below 1, and a share stuck with a probability below 1. A rate of 1
    /// (an outage of that command for the window) is reproducible.
    pub fn reproducible(&self) -> bool {
        match &self.action {
            Action::CephRulesOn { rules, .. } => rules.iter().all(|r| {
                r.parse::<fake_ceph::FaultSpec>()
                    .is_ok_and(|s| s.0.error_rate.is_none_or(|x| x <= 0.0 || x >= 1.0))
            }),
            Action::ManilaFaultsOn { faults, .. } => [
                faults.error_rate,
                faults.stuck_creating_rate,
                faults.share_error_rate,
                faults.access_error_rate,
            ]
            .iter()
            .all(|x| *x <= 0.0 || *x >= 1.0),
            // Which back-end commands a restart cuts depends on the wall clock.
            Action::RestartCeph => false,
            _ => true,
        }
    }

    /// Checks the step against a cluster of `nodes` nodes.
    pub fn check(&self, nodes: usize) -> Result<(), String> {
        if !(self.after_s.is_finite() && self.after_s >= 0.0) {
            return Err(format!(
                "fault_plan: after_s must be finite and at least 0, got {}",
                self.after_s
            ));
        }
        match &self.action {
            Action::CephRulesOn { rules, .. } => {
                for r in rules {
                    r.parse::<fake_ceph::FaultSpec>()
                        .map_err(|e| format!("fault_plan: {e}"))?;
                }
            }
            Action::ManilaFaultsOn { faults, .. } => {
                faults
                    .validate()
                    .map_err(|e| format!("fault_plan: manila faults: {e}"))?;
            }
            Action::Evict { node: Some(i) }
            | Action::Kill {
                plugin: Plugin::Node(i),
            }
            | Action::Restart {
                plugin: Plugin::Node(i),
            } if *i >= nodes => {
                return Err(format!(
                    "fault_plan: node index {i} is beyond the {nodes} nodes"
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// What the back end reports of one applied step (measured: it may vary between runs
/// and stays out of the event log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// MDS sessions evicted.
    pub sessions_evicted: usize,
    /// Shares reset from `creating` to `error`.
    pub shares_reset: usize,
}

/// What a run counted of its plan: steps applied by name, calls the kills cut, what the
/// back end reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Steps applied, by [`Action::name`].
    pub applied: std::collections::BTreeMap<String, u64>,
    /// Steps never reached (the run ended first).
    pub not_reached: u64,
    /// Steps the back end refused (with why).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<String>,
    /// Calls in flight that kills cut (they failed with `Unavailable`).
    pub calls_cut: u64,
    /// Calls made to a plugin while it was down (they failed with `Unavailable`).
    pub calls_refused: u64,
    /// MDS sessions evicted.
    pub sessions_evicted: u64,
    /// Shares reset from `creating` or `error_deleting` to `error`.
    pub shares_reset: u64,
    /// Failed calls by the fault kind in force when they ended (a window open, or the
    /// kill of their plugin): `ceph-errors`, `ceph-hangs`, `mds-down`, `manila-5xx`,
    /// `manila-stuck`, `controller-kills`, `node-kills`.
    pub calls_failed_during: std::collections::BTreeMap<String, u64>,
}

impl FaultCounts {
    /// Counts one applied step.
    pub fn count(&mut self, action: &Action, applied: Applied) {
        *self.applied.entry(action.name().to_owned()).or_default() += 1;
        self.sessions_evicted += applied.sessions_evicted as u64;
        self.shares_reset += applied.shares_reset as u64;
    }

    /// How many steps named `name` were applied.
    pub fn applied(&self, name: &str) -> u64 {
        self.applied.get(name).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(action: Action, reproducible: bool) {
        let s = Step {
            at: Anchor::Start,
            after_s: 1.0,
            action,
        };
        assert_eq!(s.reproducible(), reproducible, "{s:?}");
        assert_eq!(s.check(3), Ok(()), "{s:?}");
    }

    #[test]
    fn only_partial_rates_make_a_step_unreproducible() {
        let rules = |r: &[&str]| Action::CephRulesOn {
            window: 1,
            rules: r.iter().map(|s| (*s).to_owned()).collect(),
        };
        check(rules(&["error:fs subvolume create=1:5"]), true);
        check(rules(&["hang:client session open"]), true);
        check(rules(&["latency:*=20"]), true);
        check(rules(&["error:fs subvolume create=0.3"]), false);
        let manila = |error_rate: f64, stuck: f64| Action::ManilaFaultsOn {
            window: 2,
            faults: fake_manila::Faults {
                error_rate,
                stuck_creating_rate: stuck,
                ..Default::default()
            },
        };
        check(manila(1.0, 0.0), true);
        check(manila(0.0, 1.0), true);
        check(manila(0.5, 0.0), false);
        check(manila(0.0, 0.2), false);
        check(
            Action::Kill {
                plugin: Plugin::Node(2),
            },
            true,
        );
        check(Action::Evict { node: None }, true);
    }

    #[test]
    fn steps_are_checked_against_the_cluster() {
        let step = |after_s: f64, action: Action| Step {
            at: Anchor::Deploy,
            after_s,
            action,
        };
        let kill3 = Action::Kill {
            plugin: Plugin::Node(3),
        };
        assert!(step(1.0, kill3.clone()).check(3).is_err());
        assert!(step(1.0, kill3).check(4).is_ok());
        assert!(step(-1.0, Action::MdsDown).check(1).is_err());
        assert!(step(f64::NAN, Action::MdsDown).check(1).is_err());
        let bad_rule = Action::CephRulesOn {
            window: 1,
            rules: vec!["slow:*=1".into()],
        };
        assert!(step(1.0, bad_rule).check(1).is_err());
        let bad_rate = Action::ManilaFaultsOn {
            window: 1,
            faults: fake_manila::Faults {
                error_rate: 2.0,
                ..Default::default()
            },
        };
        assert!(step(1.0, bad_rate).check(1).is_err());
        let json = serde_json::to_string(&step(2.5, Action::Evict { node: Some(1) })).unwrap();
        assert_eq!(
            json,
            r#"{"at":"deploy","after_s":2.5,"action":{"evict":{"node":1}}}"#
        );
    }
}
