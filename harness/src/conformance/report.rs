//! Results: a table per group and JUnit XML.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

/// The groups, as csi-sanity groups its specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Identity,
    Controller,
    Snapshot,
    Expansion,
    ModifyVolume,
    VolumeHealth,
    GroupController,
    Node,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::Identity,
        Group::Controller,
        Group::Snapshot,
        Group::Expansion,
        Group::ModifyVolume,
        Group::VolumeHealth,
        Group::GroupController,
        Group::Node,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Group::Identity => "Identity",
            Group::Controller => "Controller",
            Group::Snapshot => "Snapshot",
            Group::Expansion => "Expansion",
            Group::ModifyVolume => "ModifyVolume",
            Group::VolumeHealth => "VolumeHealth",
            Group::GroupController => "GroupController",
            Group::Node => "Node",
        }
    }

    /// How many specs csi-sanity v5.6.0 (103 specs, one of them pending) has in
    /// this group.
    pub fn sanity_specs(self) -> usize {
        match self {
            Group::Identity => 3,
            // With the pending pagination spec.
            Group::Controller => 36,
            Group::Snapshot => 19,
            Group::Expansion => 3,
            Group::ModifyVolume => 6,
            // ControllerGetVolumeHealth (2) and ControllerListVolumeHealth (1).
            Group::VolumeHealth => 3,
            Group::GroupController => 6,
            Group::Node => 27,
        }
    }
}

/// The csi-sanity spec a bench check stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Its full name as csi-sanity's JUnit report gives it (`testcase name`
    /// without the leading `[It] `).
    pub name: &'static str,
    /// csi-sanity marks the spec pending and never runs it; the bench runs it as
    /// one of its own checks.
    pub pending: bool,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pass,
    Skip(String),
    /// The failing assertion.
    Fail(String),
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub group: Group,
    pub name: String,
    /// A csi-sanity spec csi-sanity runs (false: one the bench adds, or csi-sanity's
    /// pending spec, which only the bench runs).
    pub sanity: bool,
    /// The csi-sanity spec this check stands for, if any.
    pub spec: Option<Spec>,
    pub status: Status,
    /// How many calls were repeated because they answered Aborted (`--aborted-retry`).
    /// csi-sanity never repeats one, so a check that passed with retries would
    /// have failed there.
    pub retries: u32,
    /// What the cleanup could not undo.
    pub cleanup: Vec<String>,
    pub elapsed: Duration,
}

impl CheckResult {
    pub fn full_name(&self) -> String {
        format!("{} › {}", self.group.name(), self.name)
    }

    /// "passed after N retries" (or failed, or skipped), when calls were retried.
    pub fn retry_note(&self) -> Option<String> {
        if self.retries == 0 {
            return None;
        }
        let word = match self.status {
            Status::Pass => "passed",
            Status::Skip(_) => "skipped",
            Status::Fail(_) => "failed",
        };
        let s = if self.retries == 1 { "y" } else { "ies" };
        Some(format!(
            "{word} after {} retr{s} of calls answered Aborted (csi-sanity does not retry)",
            self.retries
        ))
    }
}

/// All results of a run.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub results: Vec<CheckResult>,
    /// Scratch directories the bench could not remove.
    pub leftovers: Vec<String>,
    pub elapsed: Duration,
}

impl Report {
    fn count(&self, f: impl Fn(&Status) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.status)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|s| *s == Status::Pass)
    }
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, Status::Fail(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|s| matches!(s, Status::Skip(_)))
    }
    /// Checks that passed only because Aborted answers were retried.
    pub fn passed_after_retries(&self) -> usize {
        self.results
            .iter()
            .filter(|r| r.status == Status::Pass && r.retries > 0)
            .count()
    }
    /// The result of the check called `name` (exact, without the group).
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.name == name)
    }
    /// The failed checks' names.
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.status, Status::Fail(_)))
            .collect()
    }

    /// A table per group: PASS/FAIL/SKIP, the failing assertion or skip reason;
    /// `[+]` marks checks csi-sanity does not have.
    pub fn table(&self) -> String {
        let mut out = String::from("[+] marks a check csi-sanity does not have.\n");
        for g in Group::ALL {
            let rows: Vec<_> = self.results.iter().filter(|r| r.group == g).collect();
            if rows.is_empty() {
                continue;
            }
            let pass = rows.iter().filter(|r| r.status == Status::Pass).count();
            let fail = rows
                .iter()
                .filter(|r| matches!(r.status, Status::Fail(_)))
                .count();
            let sanity = rows.iter().filter(|r| r.sanity).count();
            let _ = writeln!(
                out,
                "\n{} — {} checks ({} of csi-sanity's {}, {} more): {pass} pass, {fail} fail, {} skip",
                g.name(),
                rows.len(),
                sanity,
                g.sanity_specs(),
                rows.len() - sanity,
                rows.len() - pass - fail
            );
            for r in rows {
                let tag = if r.sanity { "   " } else { "[+]" };
                let (word, mut detail) = match &r.status {
                    Status::Pass => ("PASS", String::new()),
                    Status::Skip(why) => ("SKIP", format!(" ({why})")),
                    Status::Fail(_) => ("FAIL", String::new()),
                };
                if let Some(note) = r.retry_note() {
                    detail.push_str(&format!(" ({note})"));
                }
                let _ = writeln!(
                    out,
                    "  {word} {tag} {}{detail}  [{:.0?}]",
                    r.name, r.elapsed
                );
                if let Status::Fail(m) = &r.status {
                    for line in m.lines() {
                        let _ = writeln!(out, "         ↳ {line}");
                    }
                }
                for c in &r.cleanup {
                    let _ = writeln!(out, "         cleanup: {c}");
                }
            }
        }
        for l in &self.leftovers {
            let _ = writeln!(out, "cleanup: {l}");
        }
        let retried = match self.passed_after_retries() {
            0 => String::new(),
            n => format!(" ({n} of them after retries)"),
        };
        let _ = writeln!(
            out,
            "\n{} checks: {} pass{retried}, {} fail, {} skip in {:.1?}",
            self.results.len(),
            self.passed(),
            self.failed(),
            self.skipped(),
            self.elapsed
        );
        out
    }

    /// JUnit XML (quick-junit): a `<testsuite>` per group, a `<testcase>` per check. A
    /// check's csi-sanity spec is a property, a retry note its system-out, what its
    /// cleanup could not remove its system-err.
    pub fn junit(&self) -> String {
        let mut report = quick_junit::Report::new("csi-conformance");
        report.set_time(self.elapsed);
        for g in Group::ALL {
            let rows: Vec<_> = self.results.iter().filter(|r| r.group == g).collect();
            if rows.is_empty() {
                continue;
            }
            let mut suite = TestSuite::new(g.name());
            suite.set_time(rows.iter().map(|r| r.elapsed).sum());
            suite.add_test_cases(rows.into_iter().map(|r| test_case(g, r)));
            report.add_test_suite(suite);
        }
        // Serializing an in-memory report fails only on a broken writer.
        report.to_string().unwrap_or_default()
    }
}

/// One check as a JUnit test case.
fn test_case(g: Group, r: &CheckResult) -> TestCase {
    let status = match &r.status {
        Status::Pass => TestCaseStatus::success(),
        Status::Skip(why) => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(why.as_str());
            s
        }
        Status::Fail(m) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(m.lines().next().unwrap_or_default())
                .set_type("assertion")
                .set_description(m.as_str());
            s
        }
    };
    let mut case = TestCase::new(r.name.as_str(), status);
    case.set_classname(g.name()).set_time(r.elapsed);
    if let Some(spec) = r.spec {
        case.add_property(Property::new("csi-sanity", spec.name));
        if spec.pending {
            case.add_property(Property::new("csi-sanity-pending", "true"));
        }
    }
    if let Some(note) = r.retry_note() {
        case.set_system_out(note);
    }
    if !r.cleanup.is_empty() {
        case.set_system_err(format!("cleanup: {}", r.cleanup.join("\n")));
    }
    case
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, status: Status) -> CheckResult {
        CheckResult {
            group: Group::Node,
            name: name.to_owned(),
            sanity: false,
            spec: None,
            status,
            retries: 0,
            cleanup: Vec::new(),
            elapsed: Duration::from_millis(3),
        }
    }

    proptest::proptest! {
        /// What the bench writes, the JUnit reader reads back: every check by its name,
        /// with its outcome and the first line of its message, whatever characters they
        /// hold but control characters (quick-junit drops C0 and C1 controls and the
        /// terminal escapes they start: XML 1.0 forbids or discourages them).
        #[test]
        fn the_junit_report_reads_back(
            checks in proptest::collection::vec(("[^\\x00-\\x1f\\x7f-\\x9f]{1,30}", 0u8..3, "[^\\x00-\\x1f\\x7f-\\x9f]{0,30}"), 1..8)
        ) {
            use crate::conformance::compare::{Outcome, parse_junit};
            let mut seen = std::collections::BTreeSet::new();
            let checks: Vec<_> = checks
                .into_iter()
                .filter(|(n, _, _)| !n.starts_with("[It] ") && seen.insert(n.clone()))
                .collect();
            let r = Report {
                results: checks
                    .iter()
                    .map(|(n, k, m)| {
                        let status = match k {
                            0 => Status::Pass,
                            1 => Status::Fail(format!("{m}\nsecond line")),
                            _ => Status::Skip(m.clone()),
                        };
                        result(n, status)
                    })
                    .collect(),
                leftovers: Vec::new(),
                elapsed: Duration::from_secs(1),
            };
            let cases = parse_junit(&r.junit()).unwrap();
            proptest::prop_assert_eq!(cases.len(), checks.len());
            for ((n, k, m), c) in checks.iter().zip(&cases) {
                proptest::prop_assert_eq!(&c.name, n);
                let want = match k {
                    0 => Outcome::Pass,
                    1 => Outcome::Fail(m.clone()),
                    _ => Outcome::Skip(m.strip_prefix("skipped - ").unwrap_or(m).to_owned()),
                };
                proptest::prop_assert_eq!(&c.outcome, &want);
            }
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let r = Report {
            results: vec![
                result("a <b>", Status::Pass),
                result("c", Status::Fail("x & \"y\"\nmore".to_owned())),
                result("d", Status::Skip("no 'cap'".to_owned())),
            ],
            leftovers: Vec::new(),
            elapsed: Duration::from_secs(1),
        };
        let x = r.junit();
        let top = x.lines().nth(1).unwrap_or_default();
        for count in ["tests=\"3\"", "failures=\"1\"", "skipped=\"1\""] {
            assert!(top.contains(count), "{count} in {x}");
        }
        assert!(x.contains("name=\"a &lt;b&gt;\""), "{x}");
        assert!(
            x.contains("<failure message=\"x &amp; &quot;y&quot;\""),
            "{x}"
        );
        assert!(
            x.contains("<skipped message=\"no &apos;cap&apos;\"/>"),
            "{x}"
        );
        let t = r.table();
        assert!(t.contains("FAIL [+] c"), "{t}");
        assert!(t.contains("↳ more"), "{t}");
        assert_eq!(r.failed(), 1);
    }

    #[test]
    fn retries_and_specs_are_shown() {
        let mut retried = result("r", Status::Pass);
        retried.retries = 3;
        retried.sanity = true;
        retried.spec = Some(Spec {
            name: "Node Service should work",
            pending: false,
        });
        let mut once = result("o", Status::Fail("x".to_owned()));
        once.retries = 1;
        let r = Report {
            results: vec![retried, once, result("p", Status::Pass)],
            leftovers: Vec::new(),
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(r.passed_after_retries(), 1);
        let t = r.table();
        assert!(
            t.contains("PASS     r (passed after 3 retries of calls answered Aborted"),
            "{t}"
        );
        assert!(t.contains("(failed after 1 retry of"), "{t}");
        assert!(
            t.contains("2 pass (1 of them after retries), 1 fail"),
            "{t}"
        );
        let x = r.junit();
        assert!(
            x.contains("<system-out>passed after 3 retries of calls answered Aborted"),
            "{x}"
        );
        assert!(
            x.contains("<property name=\"csi-sanity\" value=\"Node Service should work\"/>"),
            "{x}"
        );
        // A plain pass stays one line.
        assert!(
            x.contains("<testcase name=\"p\" classname=\"Node\" time=\"0.003\"/>"),
            "{x}"
        );
    }
}
