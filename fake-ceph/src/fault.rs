//! Fault knobs: per-command latency, error rate with an errno, hang, MDS down.
//!
//! A rule applies to the commands whose prefix matches its pattern: `*` for every
//! command, `fs subvolume *` for a family, or an exact prefix. Client (MDS) operations
//! are named `client <op>` (`client mkdir`, `client session open`, ...), so the same
//! rules reach the data path. Every random decision draws from the cluster's seeded RNG.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CephError, Reply, errno};

/// One fault rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// `*`, `<prefix> *` or an exact command prefix.
    pub prefix: String,
    /// Added delay before the command runs, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Probability in [0, 1] that the command fails with `errno`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// The errno of injected failures (positive; default EIO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// The command never answers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hang: bool,
}

impl FaultRule {
    /// Whether the rule applies to `prefix`.
    pub fn matches(&self, prefix: &str) -> bool {
        let p = self.prefix.trim();
        if p == "*" {
            return true;
        }
        match p.strip_suffix('*') {
            Some(stem) => prefix.starts_with(stem),
            None => p == prefix,
        }
    }
}

/// The knobs in force.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    /// Rules, all of which apply where they match.
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// The MDS is down: new sessions, client operations and `volumes` commands fail.
    #[serde(default)]
    pub mds_down: bool,
}

/// What the faults decide for one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Total delay to add.
    pub delay: Duration,
    /// Never answer.
    pub hang: bool,
    /// Fail with this errno.
    pub fail: Option<i32>,
}

impl Faults {
    /// Decides for one command, drawing a number in [0, 1) from `draw` for each rule
    /// with an error rate (in rule order, so a seed reproduces the same decisions).
    pub fn decide(&self, prefix: &str, mut draw: impl FnMut() -> f64) -> Verdict {
        let mut v = Verdict::default();
        for r in self.rules.iter().filter(|r| r.matches(prefix)) {
            if let Some(ms) = r.latency_ms {
                v.delay += Duration::from_millis(ms);
            }
            v.hang |= r.hang;
            if let Some(rate) = r.error_rate
                && v.fail.is_none()
                && draw() < rate
            {
                v.fail = Some(r.errno.unwrap_or(errno::EIO));
            }
        }
        v
    }
}

/// A fault rule given on the command line:
/// `latency:<prefix>=<ms>`, `error:<prefix>=<rate>[:<errno>]` or `hang:<prefix>`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec(pub FaultRule);

/// A malformed `--fault` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad fault '{0}': expected latency:<prefix>=<ms>, error:<prefix>=<rate>[:<errno>] or hang:<prefix>"
)]
pub struct FaultSpecError(String);

impl FromStr for FaultSpec {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FaultSpecError(s.to_owned());
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let mut rule = FaultRule {
            prefix: String::new(),
            latency_ms: None,
            error_rate: None,
            errno: None,
            hang: false,
        };
        match kind {
            "hang" => {
                rule.prefix = rest.trim().to_owned();
                rule.hang = true;
            }
            "latency" => {
                let (p, v) = rest.rsplit_once('=').ok_or_else(bad)?;
                let v = v.trim().trim_end_matches("ms");
                rule.prefix = p.trim().to_owned();
                rule.latency_ms = Some(v.parse().map_err(|_| bad())?);
            }
            "error" => {
                let (p, v) = rest.rsplit_once('=').ok_or_else(bad)?;
                let (rate, e) = match v.split_once(':') {
                    Some((r, e)) => (r, Some(errno::parse(e).ok_or_else(bad)?)),
                    None => (v, None),
                };
                let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(bad());
                }
                rule.prefix = p.trim().to_owned();
                rule.error_rate = Some(rate);
                rule.errno = e;
            }
            _ => return Err(bad()),
        }
        if rule.prefix.is_empty() {
            return Err(bad());
        }
        Ok(FaultSpec(rule))
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        if r.hang {
            write!(f, "hang:{}", r.prefix)
        } else if let Some(ms) = r.latency_ms {
            write!(f, "latency:{}={ms}", r.prefix)
        } else {
            write!(
                f,
                "error:{}={}:{}",
                r.prefix,
                r.error_rate.unwrap_or(0.0),
                r.errno.unwrap_or(errno::EIO)
            )
        }
    }
}

/// Sleeps or hangs as the verdict says; an injected failure becomes the reply.
pub(crate) async fn apply_verdict(v: &Verdict) -> Option<Reply> {
    if !v.delay.is_zero() {
        tokio::time::sleep(v.delay).await;
    }
    if v.hang {
        std::future::pending::<()>().await;
    }
    v.fail.map(|e| {
        CephError::new(e, format!("{} (fault injected)", crate::error::strerror(e))).into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, expected: Option<FaultRule>) {
        assert_eq!(
            spec.parse::<FaultSpec>().ok().map(|s| s.0),
            expected,
            "{spec}"
        );
    }

    fn rule(prefix: &str) -> FaultRule {
        FaultRule {
            prefix: prefix.into(),
            latency_ms: None,
            error_rate: None,
            errno: None,
            hang: false,
        }
    }

    #[test]
    fn parses_flags() {
        check(
            "latency:fs subvolume create=200ms",
            Some(FaultRule {
                latency_ms: Some(200),
                ..rule("fs subvolume create")
            }),
        );
        check(
            "error:fs subvolume *=0.5:EAGAIN",
            Some(FaultRule {
                error_rate: Some(0.5),
                errno: Some(11),
                ..rule("fs subvolume *")
            }),
        );
        check(
            "error:*=1",
            Some(FaultRule {
                error_rate: Some(1.0),
                ..rule("*")
            }),
        );
        check(
            "hang:fs subvolume rm",
            Some(FaultRule {
                hang: true,
                ..rule("fs subvolume rm")
            }),
        );
        check("error:*=2", None);
        check("error:*=0.5:ENOPE", None);
        check("slow:*=1", None);
        check("hang:", None);
        check("latency:x=abc", None);
    }

    #[test]
    fn matching_and_decisions() {
        let f = Faults {
            rules: vec![
                FaultRule {
                    latency_ms: Some(10),
                    ..rule("*")
                },
                FaultRule {
                    error_rate: Some(0.5),
                    errno: Some(11),
                    ..rule("fs subvolume *")
                },
            ],
            mds_down: false,
        };
        let v = f.decide("fs ls", || 0.0);
        assert_eq!(v.delay, Duration::from_millis(10));
        assert_eq!(v.fail, None);
        assert_eq!(f.decide("fs subvolume create", || 0.49).fail, Some(11));
        assert_eq!(f.decide("fs subvolume create", || 0.5).fail, None);
        assert!(rule("fs subvolume *").matches("fs subvolume snapshot create"));
        assert!(!rule("fs subvolume *").matches("fs subvolumegroup create"));
        assert!(!rule("fs ls").matches("fs lsx"));
    }
}
