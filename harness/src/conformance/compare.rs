//! The bench beside csi-sanity: reads csi-sanity's JUnit report of a run against
//! the same driver configuration and lines up every csi-sanity spec with the bench
//! check that stands for it (by the spec's full name, which each such check
//! carries in [`super::checks`]).
//!
//! How outcomes count:
//! - the same outcome on both sides (pass, fail or skip) agrees; two failures agree
//!   whatever their messages;
//! - a spec csi-sanity marks pending is never run there: the bench's result is
//!   shown and counts as explained;
//! - a skip on one side and a run on the other is a disagreement, unless the skip
//!   comes from a setting of the run rather than from the driver: csi-sanity's
//!   attach-limit spec without `--csi.testnodevolumeattachlimit` (the bench's
//!   `--test-node-volume-attach-limit`), and "should remove target path" with a
//!   create-path hook but no check-path hook. Those count as explained and are
//!   listed with the reason;
//! - a bench pass that needed retries of Aborted answers against a csi-sanity
//!   failure is a disagreement (csi-sanity never retries; run without
//!   `--aborted-retry`);
//! - a csi-sanity failure that is csi-sanity's own bug, against a bench pass,
//!   counts as explained: v5.6.0's snapshot topology spec compares the node's
//!   topology with the snapshot's by `reflect.DeepEqual` on the protobuf structs,
//!   which differ in the size gRPC cached in the node's one when it sent it, so it
//!   fails every driver that reports a snapshot topology (the bench compares the
//!   segments);
//! - a csi-sanity spec no bench check stands for, or whose check was filtered out
//!   of the run, is missing.
//!
//! Any disagreement or missing spec makes the comparison fail.

use std::fmt::Write as _;

use super::checks::Check;
use super::report::{CheckResult, Report, Status};

/// A spec's outcome in csi-sanity's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The failure message.
    Fail(String),
    /// The skip message.
    Skip(String),
    /// Marked pending (never run).
    Pending,
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "SKIP",
            Outcome::Pending => "PENDING",
        }
    }
}

/// One `testcase` of csi-sanity's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// The spec's full name, without ginkgo's `[It] ` prefix.
    pub name: String,
    pub outcome: Outcome,
}

/// Why a JUnit report could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JunitError {
    /// The report has no `<testcase>` at all.
    #[error("no <testcase> element: not a JUnit report")]
    NoTestcases,
    /// A `testcase` does not end.
    #[error("unterminated {what} at byte {at}")]
    Unterminated { what: &'static str, at: usize },
    /// Not well-formed XML (a tag or attribute value that does not end, an attribute
    /// that is not `name="value"`, an end tag that does not match).
    #[error("malformed XML at byte {at}: {message}")]
    Xml { at: usize, message: String },
    /// A `testcase` has no `name`.
    #[error("a <testcase> without a name at byte {0}")]
    NoName(usize),
    /// A `status` ginkgo does not write.
    #[error("testcase {name:?}: unknown status {status:?}")]
    Status { name: String, status: String },
    /// Two `testcase`s with one name.
    #[error("testcase {0:?} appears twice")]
    Duplicate(String),
}

/// A `testcase` being read: where it starts, its attributes, and the `message` of its
/// first `failure` (or `error`) and `skipped` children.
struct OpenCase {
    at: usize,
    attrs: Vec<(String, String)>,
    failure: Option<String>,
    skipped: Option<String>,
}

/// Reads the `testcase`s of a JUnit report as ginkgo (csi-sanity) writes them:
/// `status` gives the outcome (passed, failed, skipped, pending, or panicked,
/// interrupted, aborted, timedout: failures); without one, a `failure` or `error`
/// child is a failure and a `skipped` child a skip (`message="pending"`: pending).
/// The XML is read with quick-xml (entities and character references resolved).
pub fn parse_junit(xml: &str) -> Result<Vec<Case>, JunitError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases: Vec<Case> = Vec::new();
    let mut open: Option<OpenCase> = None;
    loop {
        let at = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let xml_err = |e: &dyn std::fmt::Display| JunitError::Xml {
            at,
            message: e.to_string(),
        };
        let event = reader.read_event().map_err(|e| xml_err(&e))?;
        let (tag, empty) = match &event {
            Event::Start(t) => (Some(t), false),
            Event::Empty(t) => (Some(t), true),
            _ => (None, false),
        };
        if let Some(t) = tag {
            let mut attrs = Vec::new();
            for a in t.attributes() {
                let a = a.map_err(|e| xml_err(&e))?;
                let value = a
                    .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                    .map_err(|e| xml_err(&e))?;
                attrs.push((
                    String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                    value.into_owned(),
                ));
            }
            match (t.name().as_ref(), open.as_mut()) {
                (b"testcase", _) => {
                    let case = OpenCase {
                        at,
                        attrs,
                        failure: None,
                        skipped: None,
                    };
                    if empty {
                        push_case(&mut cases, case)?;
                    } else {
                        open = Some(case);
                    }
                }
                (b"failure" | b"error", Some(c)) if c.failure.is_none() => {
                    c.failure = Some(attr(&attrs, "message").unwrap_or_default());
                }
                (b"skipped", Some(c)) if c.skipped.is_none() => {
                    c.skipped = Some(attr(&attrs, "message").unwrap_or_default());
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::End(t) if t.name().as_ref() == b"testcase" => {
                if let Some(c) = open.take() {
                    push_case(&mut cases, c)?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(c) = open {
        return Err(JunitError::Unterminated {
            what: "<testcase>",
            at: c.at,
        });
    }
    if cases.is_empty() {
        return Err(JunitError::NoTestcases);
    }
    Ok(cases)
}

/// The outcome of a read `testcase`, added to `cases`.
fn push_case(cases: &mut Vec<Case>, c: OpenCase) -> Result<(), JunitError> {
    let name = attr(&c.attrs, "name").ok_or(JunitError::NoName(c.at))?;
    let name = name.strip_prefix("[It] ").unwrap_or(&name).to_owned();
    let outcome = match attr(&c.attrs, "status").as_deref() {
        Some("passed") => Outcome::Pass,
        Some("pending") => Outcome::Pending,
        Some("skipped") => Outcome::Skip(skip_reason(c.skipped.unwrap_or_default())),
        Some("failed" | "panicked" | "interrupted" | "aborted" | "timedout") => {
            Outcome::Fail(c.failure.unwrap_or_default())
        }
        Some(other) => {
            return Err(JunitError::Status {
                name,
                status: other.to_owned(),
            });
        }
        None => match (c.failure, c.skipped) {
            (Some(m), _) => Outcome::Fail(m),
            (None, Some(m)) if m == "pending" => Outcome::Pending,
            (None, Some(m)) => Outcome::Skip(skip_reason(m)),
            (None, None) => Outcome::Pass,
        },
    };
    if cases.iter().any(|c| c.name == name) {
        return Err(JunitError::Duplicate(name));
    }
    cases.push(Case { name, outcome });
    Ok(())
}

/// ginkgo's skip message without its `skipped - ` prefix.
fn skip_reason(m: String) -> String {
    m.strip_prefix("skipped - ").map(str::to_owned).unwrap_or(m)
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// How one spec compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Agree,
    /// Not the same outcome, for a reason that is not the driver's (the reason).
    Explained(String),
    /// The detail.
    Disagree(String),
    /// No bench result for the spec (why).
    Missing(String),
}

/// One csi-sanity spec beside the bench.
#[derive(Debug, Clone)]
pub struct Row {
    pub spec: String,
    pub sanity: Outcome,
    /// The bench's result, when it ran a check for the spec.
    pub bench: Option<CheckResult>,
    pub verdict: Verdict,
}

/// Every csi-sanity spec of a report beside the bench's results.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Specs the bench has checks for that the csi-sanity report does not name
    /// (another csi-sanity version, or a filtered csi-sanity run).
    pub unmatched: Vec<&'static str>,
}

/// Skips caused by how a tool was run, not by the driver: (what csi-sanity's
/// message holds, what the bench's holds, the explanation).
const CONFIG_SKIPS: &[(&str, &str, &str)] = &[
    (
        "testnodevolumeattachlimit not enabled",
        "testnodevolumeattachlimit not enabled",
        "runs only with --csi.testnodevolumeattachlimit (csi-sanity) / --test-node-volume-attach-limit (bench)",
    ),
    (
        "CreateTargetPathCmd was set, but CheckPathCmd was not",
        "--create-target-cmd was given without --check-path-cmd",
        "the target path can be checked only with a check-path hook",
    ),
    (
        "IdempotentCount is zero or negative",
        "IdempotentCount is zero or negative",
        "csi-sanity's IdempotentCount is not positive",
    ),
];

/// csi-sanity failures that are csi-sanity's own bugs: (spec, what its failure
/// message holds, the explanation).
const SANITY_BUGS: &[(&str, &str, &str)] = &[(
    "CreateSnapshot [Controller Server] should succeed when creating a snapshot with accessibility requirements",
    "<*csi.Topology",
    "csi-sanity compares topologies with reflect.DeepEqual, which sees the size gRPC cached in the node's topology when it sent it: it fails every driver that reports a snapshot topology",
)];

/// A configuration reason for a skip on either side.
fn config_skip(sanity: &Outcome, bench: &Status) -> Option<&'static str> {
    CONFIG_SKIPS.iter().find_map(|(s, b, why)| {
        let hit = matches!(sanity, Outcome::Skip(m) if m.contains(s))
            || matches!(bench, Status::Skip(m) if m.contains(b));
        hit.then_some(*why)
    })
}

fn first_line(m: &str) -> &str {
    m.lines().next().unwrap_or_default()
}

/// Lines up csi-sanity's `cases` with the bench's `report`; `checks` are all the
/// bench's checks (to tell a spec without a check from one filtered out).
pub fn compare(cases: &[Case], report: &Report, checks: &[Check]) -> Comparison {
    let mut rows = Vec::new();
    for case in cases {
        let known = checks
            .iter()
            .find(|c| c.spec.is_some_and(|s| s.name == case.name));
        let ran = report
            .results
            .iter()
            .find(|r| r.spec.is_some_and(|s| s.name == case.name));
        let verdict = match (known, ran) {
            (None, _) => Verdict::Missing("no bench check stands for this spec".to_owned()),
            (Some(c), None) => Verdict::Missing(format!(
                "the bench's check {:?} was filtered out of this run",
                c.name
            )),
            (Some(_), Some(r)) => judge(&case.outcome, r),
        };
        rows.push(Row {
            spec: case.name.clone(),
            sanity: case.outcome.clone(),
            bench: ran.cloned(),
            verdict,
        });
    }
    let unmatched = checks
        .iter()
        .filter_map(|c| c.spec)
        .filter(|s| !cases.iter().any(|c| c.name == s.name))
        .map(|s| s.name)
        .collect();
    Comparison { rows, unmatched }
}

/// The explanation when csi-sanity's failure `m` of the bench's check is one of
/// [`SANITY_BUGS`].
fn sanity_bug(m: &str, bench: &CheckResult) -> Option<&'static str> {
    SANITY_BUGS
        .iter()
        .find(|(spec, text, _)| bench.spec.is_some_and(|s| s.name == *spec) && m.contains(text))
        .map(|(_, _, why)| *why)
}

fn judge(sanity: &Outcome, bench: &CheckResult) -> Verdict {
    let b = &bench.status;
    match (sanity, b) {
        (Outcome::Pending, _) => {
            Verdict::Explained("csi-sanity marks the spec pending and never runs it".to_owned())
        }
        (Outcome::Pass, Status::Pass)
        | (Outcome::Fail(_), Status::Fail(_))
        | (Outcome::Skip(_), Status::Skip(_)) => Verdict::Agree,
        (Outcome::Fail(m), Status::Pass) if sanity_bug(m, bench).is_some() => {
            Verdict::Explained(sanity_bug(m, bench).unwrap_or_default().to_owned())
        }
        (Outcome::Fail(m), Status::Pass) if bench.retries > 0 => Verdict::Disagree(format!(
            "the bench passed only after {} retries of Aborted answers, csi-sanity never retries ({}); run the bench without --aborted-retry",
            bench.retries,
            first_line(m)
        )),
        _ => match config_skip(sanity, b) {
            Some(why) => Verdict::Explained(why.to_owned()),
            None => Verdict::Disagree(match (sanity, b) {
                (_, Status::Fail(m)) => format!("bench: {}", first_line(m)),
                (_, Status::Skip(m)) => format!("bench skipped: {m}"),
                (Outcome::Fail(m), _) => format!("csi-sanity: {}", first_line(m)),
                (Outcome::Skip(m), _) => format!("csi-sanity skipped: {m}"),
                _ => String::new(),
            }),
        },
    }
}

impl Comparison {
    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.rows.iter().filter(|r| f(&r.verdict)).count()
    }
    pub fn agreed(&self) -> usize {
        self.count(|v| *v == Verdict::Agree)
    }
    pub fn explained(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Explained(_)))
    }
    pub fn disagreed(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Disagree(_)))
    }
    pub fn missing(&self) -> usize {
        self.count(|v| matches!(v, Verdict::Missing(_)))
    }
    /// No disagreement and no missing spec.
    pub fn ok(&self) -> bool {
        self.disagreed() == 0 && self.missing() == 0
    }

    /// Every spec with both outcomes, then the disagreements, the missing specs,
    /// the explained ones, and a summary line.
    pub fn table(&self) -> String {
        let mut out = format!(
            "\ncsi-sanity beside the bench: {} specs\n  verdict    bench    csi-sanity  spec\n",
            self.rows.len()
        );
        for r in &self.rows {
            let verdict = match r.verdict {
                Verdict::Agree => "agree",
                Verdict::Explained(_) => "explained",
                Verdict::Disagree(_) => "DISAGREE",
                Verdict::Missing(_) => "MISSING",
            };
            let bench = r.bench.as_ref().map_or("-", |b| match b.status {
                Status::Pass => "PASS",
                Status::Fail(_) => "FAIL",
                Status::Skip(_) => "SKIP",
            });
            let _ = writeln!(
                out,
                "  {verdict:<10} {bench:<8} {:<11} {}",
                r.sanity.word(),
                r.spec
            );
        }
        for (title, kind) in [
            ("Disagreements", 0),
            ("csi-sanity specs without a bench result", 1),
            ("Explained", 2),
        ] {
            let rows: Vec<_> = self
                .rows
                .iter()
                .filter_map(|r| match (&r.verdict, kind) {
                    (Verdict::Disagree(d), 0)
                    | (Verdict::Missing(d), 1)
                    | (Verdict::Explained(d), 2) => Some((r, d)),
                    _ => None,
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\n{title} ({}):", rows.len());
            for (r, d) in rows {
                let _ = writeln!(out, "  - {}\n      {d}", r.spec);
            }
        }
        if !self.unmatched.is_empty() {
            let _ = writeln!(
                out,
                "\nBench checks for specs this csi-sanity report does not have ({}):",
                self.unmatched.len()
            );
            for s in &self.unmatched {
                let _ = writeln!(out, "  - {s}");
            }
        }
        let _ = writeln!(
            out,
            "\ncompared {} csi-sanity specs: {} agree, {} explained, {} disagree, {} missing",
            self.rows.len(),
            self.agreed(),
            self.explained(),
            self.disagreed(),
            self.missing()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::conformance::checks;
    use crate::conformance::report::{Group, Spec};

    /// csi-sanity v5.6.0's JUnit report of a real run against cephfs-csi with
    /// --attach-required on fake-ceph (passes, failures, skips and the pending spec).
    const REAL: &str = include_str!("../../tests/data/csi-sanity-v5.6.0-attach.xml");

    fn case<'a>(cases: &'a [Case], name: &str) -> &'a Outcome {
        &cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name:?}"))
            .outcome
    }

    #[test]
    fn parses_a_real_csi_sanity_report() {
        let cases = parse_junit(REAL).unwrap();
        assert_eq!(cases.len(), 103);
        let count = |f: fn(&Outcome) -> bool| cases.iter().filter(|c| f(&c.outcome)).count();
        assert_eq!(count(|o| *o == Outcome::Pass), 68);
        assert_eq!(count(|o| matches!(o, Outcome::Fail(_))), 3);
        assert_eq!(count(|o| matches!(o, Outcome::Skip(_))), 31);
        assert_eq!(count(|o| *o == Outcome::Pending), 1);
        assert_eq!(
            case(
                &cases,
                "Identity Service Probe should return appropriate information"
            ),
            &Outcome::Pass
        );
        assert_eq!(
            case(
                &cases,
                "Controller Service [Controller Server] GetCapacity should return capacity (no optional values added)"
            ),
            &Outcome::Skip("GetCapacity not supported".to_owned())
        );
        assert_eq!(
            case(
                &cases,
                "Controller Service [Controller Server] ListVolumes pagination should detect volumes added between pages and accept tokens when the last volume from a page is deleted"
            ),
            &Outcome::Pending
        );
        // Failure messages are unescaped (&#xA; is a newline, &lt; a '<').
        match case(
            &cases,
            "Controller Service [Controller Server] CreateVolume should create volume from an existing source volume",
        ) {
            Outcome::Fail(m) => {
                assert!(
                    m.starts_with("Unexpected error:\n    <*status.Error"),
                    "{m}"
                );
                assert!(
                    m.contains("code = Aborted desc = clone from snapshot is pending"),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_csi_sanity_spec_has_exactly_one_bench_check() {
        let cases = parse_junit(REAL).unwrap();
        let all = checks::all();
        for c in &cases {
            let n = all
                .iter()
                .filter(|k| k.spec.is_some_and(|s| s.name == c.name))
                .count();
            assert_eq!(n, 1, "{:?}", c.name);
        }
        let specs = all.iter().filter(|k| k.spec.is_some()).count();
        assert_eq!(specs, cases.len());
        // The pending spec is marked so on both sides.
        for k in all.iter().filter(|k| k.spec.is_some_and(|s| s.pending)) {
            let name = k.spec.map(|s| s.name).unwrap_or_default();
            assert_eq!(case(&cases, name), &Outcome::Pending);
        }
    }

    fn parse_one(xml: &str) -> Result<Case, JunitError> {
        parse_junit(xml).map(|mut v| v.remove(0))
    }

    fn check_case(xml: &str, name: &str, outcome: Outcome) {
        assert_eq!(
            parse_one(xml),
            Ok(Case {
                name: name.to_owned(),
                outcome
            }),
            "{xml}"
        );
    }

    #[test]
    fn parses_each_shape() {
        check_case(
            r#"<testcase name="[It] a b" status="passed"/>"#,
            "a b",
            Outcome::Pass,
        );
        check_case(
            r#"<testcase name='x' status="passed" time="1"></testcase>"#,
            "x",
            Outcome::Pass,
        );
        check_case(
            r#"<testcase name="x" status="skipped"><skipped message="skipped - no &quot;cap&quot;"></skipped></testcase>"#,
            "x",
            Outcome::Skip("no \"cap\"".to_owned()),
        );
        check_case(
            r#"<testcase name="x" status="failed"><failure message="a&#xA;b &amp; c" type="failed">...</failure></testcase>"#,
            "x",
            Outcome::Fail("a\nb & c".to_owned()),
        );
        check_case(
            r#"<testcase name="x" status="panicked"><error message="boom"/></testcase>"#,
            "x",
            Outcome::Fail("boom".to_owned()),
        );
        check_case(
            r#"<testcase name="x" status="pending"><skipped message="pending"/></testcase>"#,
            "x",
            Outcome::Pending,
        );
        // Without status (other JUnit writers): from the children.
        check_case(
            r#"<testcase name="x"><failure message="m"/></testcase>"#,
            "x",
            Outcome::Fail("m".to_owned()),
        );
        check_case(
            r#"<testcase name="x"><skipped message="pending"/></testcase>"#,
            "x",
            Outcome::Pending,
        );
        check_case(
            r#"<testcase name="x"><skipped/></testcase>"#,
            "x",
            Outcome::Skip(String::new()),
        );
        check_case(r#"<testcase name="x"></testcase>"#, "x", Outcome::Pass);
        // <testcases> and <testsuite> are not testcases.
        check_case(
            r#"<testsuite name="s"><testcases/><testcase name="y"/></testsuite>"#,
            "y",
            Outcome::Pass,
        );
    }

    #[test]
    fn refuses_what_is_not_a_report() {
        assert_eq!(parse_one("<html/>"), Err(JunitError::NoTestcases));
        assert_eq!(
            parse_one(r#"<testcase status="passed"/>"#),
            Err(JunitError::NoName(0))
        );
        assert_eq!(
            parse_one(r#"<testcase name="x">"#),
            Err(JunitError::Unterminated {
                what: "<testcase>",
                at: 0
            })
        );
        for bad in [
            r#"<testcase name="x"#,
            r#"<testcase name=x/>"#,
            r#"<testcase name="x"><failure></testcase>"#,
        ] {
            assert!(
                matches!(parse_one(bad), Err(JunitError::Xml { .. })),
                "{bad}: {:?}",
                parse_one(bad)
            );
        }
        assert_eq!(
            parse_one(r#"<testcase name="x" status="odd"/>"#),
            Err(JunitError::Status {
                name: "x".to_owned(),
                status: "odd".to_owned()
            })
        );
        assert_eq!(
            parse_junit(r#"<testcase name="x"/><testcase name="x"/>"#),
            Err(JunitError::Duplicate("x".to_owned()))
        );
    }

    fn result(spec: &'static str, status: Status, retries: u32) -> CheckResult {
        CheckResult {
            group: Group::Node,
            name: format!("bench {spec}"),
            sanity: true,
            spec: Some(Spec {
                name: spec,
                pending: false,
            }),
            status,
            retries,
            cleanup: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn verdict(sanity: Outcome, bench: Status, retries: u32) -> Verdict {
        judge(&sanity, &result("s", bench, retries))
    }

    #[test]
    fn judges_each_pair() {
        let fail = || Status::Fail("boom".to_owned());
        let skip = |m: &str| Status::Skip(m.to_owned());
        assert_eq!(verdict(Outcome::Pass, Status::Pass, 0), Verdict::Agree);
        assert_eq!(
            verdict(Outcome::Fail("x".into()), fail(), 0),
            Verdict::Agree
        );
        assert_eq!(
            verdict(Outcome::Skip("a".into()), skip("b"), 0),
            Verdict::Agree
        );
        assert!(
            matches!(verdict(Outcome::Pass, fail(), 0), Verdict::Disagree(d) if d == "bench: boom")
        );
        assert!(
            matches!(verdict(Outcome::Fail("x\ny".into()), Status::Pass, 0), Verdict::Disagree(d) if d == "csi-sanity: x")
        );
        assert!(matches!(
            verdict(Outcome::Fail("x".into()), Status::Pass, 2),
            Verdict::Disagree(d) if d.contains("after 2 retries")
        ));
        assert!(
            matches!(verdict(Outcome::Pass, skip("GetCapacity not supported"), 0), Verdict::Disagree(d) if d.contains("bench skipped"))
        );
        assert!(
            matches!(verdict(Outcome::Skip("x".into()), Status::Pass, 0), Verdict::Disagree(d) if d == "csi-sanity skipped: x")
        );
        // Skips that come from how a tool was run.
        assert!(matches!(
            verdict(
                Outcome::Skip("testnodevolumeattachlimit not enabled".into()),
                Status::Pass,
                0
            ),
            Verdict::Explained(_)
        ));
        assert!(matches!(
            verdict(
                Outcome::Pass,
                skip("--create-target-cmd was given without --check-path-cmd: x"),
                0
            ),
            Verdict::Explained(_)
        ));
        assert!(matches!(
            verdict(Outcome::Pending, fail(), 0),
            Verdict::Explained(_)
        ));
        // csi-sanity's DeepEqual of protobuf topologies, on that spec only.
        let topology = Outcome::Fail("Expected\n    <*csi.Topology | 0x3e0>: {".into());
        assert!(matches!(
            verdict(topology.clone(), Status::Pass, 0),
            Verdict::Disagree(_)
        ));
        let spec = SANITY_BUGS[0].0;
        assert!(matches!(
            judge(&topology, &result(spec, Status::Pass, 0)),
            Verdict::Explained(m) if m.contains("DeepEqual")
        ));
        assert_eq!(
            judge(
                &Outcome::Fail("other".into()),
                &result(spec, Status::Pass, 0)
            ),
            Verdict::Disagree("csi-sanity: other".to_owned())
        );
    }

    #[test]
    fn compares_a_report() {
        let all = checks::all();
        let spec = |i: usize| all.iter().filter_map(|c| c.spec).nth(i).unwrap().name;
        let cases = vec![
            Case {
                name: spec(0).to_owned(),
                outcome: Outcome::Pass,
            },
            Case {
                name: spec(1).to_owned(),
                outcome: Outcome::Pass,
            },
            Case {
                name: spec(2).to_owned(),
                outcome: Outcome::Pass,
            },
            Case {
                name: "Some Future Spec".to_owned(),
                outcome: Outcome::Pass,
            },
        ];
        let report = Report {
            results: vec![
                result(spec(0), Status::Pass, 0),
                result(spec(1), Status::Fail("no".into()), 0),
            ],
            leftovers: Vec::new(),
            elapsed: Duration::ZERO,
        };
        let c = compare(&cases, &report, &all);
        assert_eq!((c.agreed(), c.disagreed(), c.missing()), (1, 1, 2));
        assert!(!c.ok());
        assert!(matches!(&c.rows[2].verdict, Verdict::Missing(m) if m.contains("filtered out")));
        assert!(matches!(&c.rows[3].verdict, Verdict::Missing(m) if m.contains("no bench check")));
        assert_eq!(c.unmatched.len(), 100);
        let t = c.table();
        assert!(
            t.contains(&format!("  agree      PASS     PASS        {}", spec(0))),
            "{t}"
        );
        assert!(
            t.contains(&format!("  DISAGREE   FAIL     PASS        {}", spec(1))),
            "{t}"
        );
        assert!(
            t.contains(&format!("  MISSING    -        PASS        {}", spec(2))),
            "{t}"
        );
        assert!(t.contains("Disagreements (1):"), "{t}");
        assert!(
            t.contains("compared 4 csi-sanity specs: 1 agree, 0 explained, 1 disagree, 2 missing"),
            "{t}"
        );

        let agreeing = compare(&cases[..1], &report, &all);
        assert!(agreeing.ok());
    }
}
