//! A run's time series, sampled on the simulated clock, and their SVG plots.
//!
//! The simulation takes a [`Sample`] of the cluster every [`PERIOD`] of simulated time
//! (before it runs the first event past each sampling instant, so a sample is the state
//! left by every event up to and including that instant) and a last one when the run ends. Counters in a
//! sample are cumulative; the plots show their rates. A run of hours keeps at most
//! [`MAX_POINTS`] points: past that, every other point is dropped and the stride doubles,
//! which leaves the cumulative counters exact and turns rates into means over the stride.
//! Peak rates are taken at the full one-period resolution before any point is dropped.
//!
//! `hcr` and `ceph_sessions` are fake-ceph's own counters, read when the sample is taken
//! and every real call under way has finished: a sample counts the MDS requests of every
//! call started before its instant (a call's requests land at its simulated start), so
//! one seed gives the same series on every run.
//!
//! The plots use plotters' SVG back end and no font files: the SVG names a generic
//! `sans-serif` family and the viewer draws the text, so no fontconfig is needed.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use plotters::prelude::*;
use serde::Serialize;

use crate::time::SimTime;

/// The sampling period, simulated.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Every plot a run may write (a run without 403s writes no `forbidden.svg`, say).
pub const PLOT_FILES: [&str; 6] = [
    "pods.svg",
    "mds_sessions.svg",
    "csi_rpcs.svg",
    "mds_requests.svg",
    "forbidden.svg",
    "stuck.svg",
];

/// Points kept per run; past it the stride doubles.
pub const MAX_POINTS: usize = 2048;

/// The cluster at one simulated instant. Counters count from the start of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// When, on the simulated clock.
    pub t: SimTime,
    /// Pods Running (not being deleted).
    pub running: u32,
    /// Pods not Running (not being deleted): unscheduled, or waiting for their volumes.
    pub pending: u32,
    /// Of the pending pods, those created longer ago than the scenario's
    /// `kill_stuck_after_s`.
    pub stuck: u32,
    /// MDS sessions, simulated accounting (stages minus unstages).
    pub sessions: u64,
    /// CSI calls finished (counter).
    pub rpcs: u64,
    /// Of which with a code other than `Ok` (counter).
    pub rpc_errors: u64,
    /// Node GETs refused with `no path found to object` (counter).
    pub forbidden: u64,
    /// Pods killed by the incremental script (counter).
    pub killed: u64,
    /// fake-ceph's `mds_server.handle_client_request` (counter; measured, real back end).
    pub hcr: Option<u64>,
    /// fake-ceph's open MDS sessions (measured, real back end).
    pub ceph_sessions: Option<u64>,
}

/// The samples of one run.
#[derive(Debug, Clone)]
pub struct Series {
    next: SimTime,
    taken: u64,
    stride: u64,
    prev: Option<Sample>,
    points: Vec<Sample>,
    peak_hcr_per_s: f64,
    peak_rpcs_per_s: f64,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            next: SimTime::ZERO,
            taken: 0,
            stride: 1,
            prev: None,
            points: Vec::new(),
            peak_hcr_per_s: 0.0,
            peak_rpcs_per_s: 0.0,
        }
    }
}

/// Counter growth per second from `a` to `b` (0 when time did not move or the counter
/// went down).
fn per_s(a: u64, b: u64, from: SimTime, to: SimTime) -> f64 {
    let dt = to.since(from).as_secs_f64();
    if dt > 0.0 {
        b.saturating_sub(a) as f64 / dt
    } else {
        0.0
    }
}

impl Series {
    /// The next sampling instant if it is earlier than `at` (the time of the next
    /// event): the caller takes a sample for that instant and
    /// [`record`](Self::record)s it. Events at the instant itself run first, so a
    /// sample at `t` holds everything up to and including `t`: the busy workload's
    /// batch charged at `t` for the second before falls in that second.
    pub fn due(&self, at: SimTime) -> Option<SimTime> {
        (self.next < at && self.next.after(PERIOD) > self.next).then_some(self.next)
    }

    /// Records the sample for the instant [`due`](Self::due) gave.
    pub fn record(&mut self, s: Sample) {
        self.next = self.next.after(PERIOD);
        self.observe(&s);
        if self.taken.is_multiple_of(self.stride) {
            self.points.push(s);
            if self.points.len() > MAX_POINTS {
                // Keep the points on the doubled stride: the even ones, counting from 0.
                let mut i = 0;
                self.points.retain(|_| {
                    i += 1;
                    (i - 1) % 2 == 0
                });
                self.stride *= 2;
            }
        }
        self.taken += 1;
    }

    /// Records the state at the end of the run (kept whatever the stride).
    pub fn finish(&mut self, s: Sample) {
        self.observe(&s);
        match self.points.last_mut() {
            Some(last) if last.t >= s.t => *last = s,
            _ => self.points.push(s),
        }
    }

    fn observe(&mut self, s: &Sample) {
        if let Some(p) = self.prev {
            if let (Some(a), Some(b)) = (p.hcr, s.hcr) {
                self.peak_hcr_per_s = self.peak_hcr_per_s.max(per_s(a, b, p.t, s.t));
            }
            self.peak_rpcs_per_s = self.peak_rpcs_per_s.max(per_s(p.rpcs, s.rpcs, p.t, s.t));
        }
        self.prev = Some(*s);
    }

    /// The points kept, in time order.
    pub fn points(&self) -> &[Sample] {
        &self.points
    }

    /// Simulated seconds between kept points (before the last one).
    pub fn step_s(&self) -> f64 {
        PERIOD.as_secs_f64() * self.stride as f64
    }

    /// MDS `handle_client_request` rates, when the back end has the counter.
    pub fn hcr(&self) -> Option<HcrRate> {
        let first = self.points.first()?;
        let last = self.points.last()?;
        let (a, b) = (first.hcr?, last.hcr?);
        Some(HcrRate {
            total: b.saturating_sub(a),
            peak_per_s: self.peak_hcr_per_s,
            mean_per_s: per_s(a, b, first.t, last.t),
        })
    }

    /// The most CSI calls finished in one sampling period, per second.
    pub fn peak_rpcs_per_s(&self) -> f64 {
        self.peak_rpcs_per_s
    }

    /// The series as columns, for `series.json`.
    pub fn columns(&self) -> Columns {
        let p = &self.points;
        let col = |f: fn(&Sample) -> u64| p.iter().map(f).collect::<Vec<u64>>();
        let opt = |f: fn(&Sample) -> Option<u64>| p.iter().map(f).collect::<Option<Vec<u64>>>();
        Columns {
            period_s: PERIOD.as_secs_f64(),
            step_s: self.step_s(),
            t_s: p.iter().map(|s| s.t.secs()).collect(),
            running: col(|s| u64::from(s.running)),
            pending: col(|s| u64::from(s.pending)),
            stuck: col(|s| u64::from(s.stuck)),
            mds_sessions: col(|s| s.sessions),
            rpcs: col(|s| s.rpcs),
            rpc_errors: col(|s| s.rpc_errors),
            forbidden: col(|s| s.forbidden),
            killed: col(|s| s.killed),
            fake_ceph_hcr: if p.is_empty() { None } else { opt(|s| s.hcr) },
            fake_ceph_sessions: if p.is_empty() {
                None
            } else {
                opt(|s| s.ceph_sessions)
            },
        }
    }
}

/// MDS `handle_client_request` per simulated second.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct HcrRate {
    /// Requests during the run.
    pub total: u64,
    /// The most in one sampling period, per second.
    pub peak_per_s: f64,
    /// Over the whole run (teardown included).
    pub mean_per_s: f64,
}

/// `series.json`: one array per quantity, all as long as `t_s`. Counters are cumulative.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Columns {
    /// The sampling period, simulated seconds.
    pub period_s: f64,
    /// Seconds between kept points (the period times the stride).
    pub step_s: f64,
    /// Simulated seconds.
    pub t_s: Vec<f64>,
    /// Pods Running.
    pub running: Vec<u64>,
    /// Pods not Running.
    pub pending: Vec<u64>,
    /// Pods not Running longer than `kill_stuck_after_s`.
    pub stuck: Vec<u64>,
    /// MDS sessions (simulated accounting).
    pub mds_sessions: Vec<u64>,
    /// CSI calls finished.
    pub rpcs: Vec<u64>,
    /// CSI calls finished with an error code.
    pub rpc_errors: Vec<u64>,
    /// `no path found to object` 403s.
    pub forbidden: Vec<u64>,
    /// Pods killed by the incremental script.
    pub killed: Vec<u64>,
    /// fake-ceph's `handle_client_request` (measured; absent with the mock back end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fake_ceph_hcr: Option<Vec<u64>>,
    /// fake-ceph's open sessions (measured; absent with the mock back end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fake_ceph_sessions: Option<Vec<u64>>,
}

/// Rates of a counter between consecutive points, per second, plotted at the later point
/// (the first point has rate 0).
pub fn rates(t: &[SimTime], c: &[u64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(c.len());
    for i in 0..c.len().min(t.len()) {
        out.push(if i == 0 {
            0.0
        } else {
            per_s(c[i - 1], c[i], t[i - 1], t[i])
        });
    }
    out
}

/// One plot written.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plot {
    /// File name in the report directory.
    pub file: String,
    /// What it shows.
    pub title: String,
}

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters failed to lay out or draw the chart.
    #[error("drawing {file}: {message}")]
    Draw {
        /// The plot.
        file: String,
        /// plotters' error.
        message: String,
    },
    /// The file could not be written.
    #[error("writing {file}")]
    Write {
        /// The plot.
        file: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One curve of a chart.
struct Line {
    label: String,
    color: RGBColor,
    ys: Vec<f64>,
}

/// Curve colours, in the order of a chart's lines.
const COLORS: [RGBColor; 3] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
];

/// What a run's plots are drawn from, besides the samples.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Scenario name, for the titles.
    pub scenario: &'a str,
    /// Replicas asked for.
    pub replicas: usize,
    /// Whether the CSIDriver requires attach (the 403 and stuck-pod plots).
    pub attach_required: bool,
    /// The stuck threshold, seconds.
    pub stuck_after_s: f64,
    /// When teardown began, simulated seconds (a marker).
    pub teardown_s: Option<f64>,
}

/// An axis label: whole numbers without decimals.
fn label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Draws a chart of `lines` over `xs` (simulated seconds) as SVG text.
fn chart(
    title: &str,
    y_desc: &str,
    xs: &[f64],
    lines: &[Line],
    marker: Option<f64>,
) -> Result<String, String> {
    let finite_max = |v: &mut dyn Iterator<Item = f64>| {
        v.filter(|x| x.is_finite())
            .fold(0.0_f64, |m, x| if x > m { x } else { m })
    };
    let x_max = finite_max(&mut xs.iter().copied().chain(marker)).max(1.0);
    let y_top = finite_max(&mut lines.iter().flat_map(|l| l.ys.iter().copied()));
    // Headroom above the highest point for the legend.
    let y_max = if y_top > 0.0 { y_top * 1.3 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(y_desc)
            .x_label_formatter(&label)
            .y_label_formatter(&label)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(|e| e.to_string())?;
        for l in lines {
            let color = l.color;
            let points = xs
                .iter()
                .zip(&l.ys)
                .map(|(x, y)| (*x, if y.is_finite() { *y } else { 0.0 }));
            c.draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(l.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        if let Some(t) = marker.filter(|t| t.is_finite()) {
            c.draw_series(LineSeries::new(
                [(t, 0.0), (t, y_max)],
                RGBColor(0x99, 0x99, 0x99),
            ))
            .map_err(|e| e.to_string())?
            .label("teardown starts")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(0x99, 0x99, 0x99))
            });
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Writes the run's plots into `dir` and returns what it wrote: pods, MDS sessions, CSI
/// call rate and errors always; MDS requests/s when the back end has the counter; 403s and
/// stuck pods when the cluster attaches (or either happened).
pub fn write_all(series: &Series, ctx: Context<'_>, dir: &Path) -> Result<Vec<Plot>, PlotError> {
    let p = series.points();
    let t: Vec<SimTime> = p.iter().map(|s| s.t).collect();
    let xs: Vec<f64> = t.iter().map(|t| t.secs()).collect();
    let step = series.step_s();
    let per = if step > PERIOD.as_secs_f64() {
        format!(" (mean over {step:.0} s)")
    } else {
        String::new()
    };
    let gauge = |f: fn(&Sample) -> u64| p.iter().map(|s| f(s) as f64).collect::<Vec<f64>>();
    let rate = |f: fn(&Sample) -> u64| rates(&t, &p.iter().map(f).collect::<Vec<u64>>());
    let line = |i: usize, label: &str, ys: Vec<f64>| Line {
        label: label.to_owned(),
        color: COLORS[i % COLORS.len()],
        ys,
    };
    let mut charts: Vec<(&str, String, &str, Vec<Line>)> = vec![
        (
            "pods.svg",
            format!("{}: pods Running ({} replicas)", ctx.scenario, ctx.replicas),
            "pods",
            vec![
                line(0, "Running", gauge(|s| u64::from(s.running))),
                line(1, "not Running", gauge(|s| u64::from(s.pending))),
            ],
        ),
        (
            "mds_sessions.svg",
            format!("{}: MDS sessions", ctx.scenario),
            "sessions",
            {
                let mut v = vec![line(0, "simulated (staged volumes)", gauge(|s| s.sessions))];
                if let Some(c) = p
                    .iter()
                    .map(|s| s.ceph_sessions)
                    .collect::<Option<Vec<_>>>()
                {
                    v.push(line(
                        2,
                        "fake-ceph (measured)",
                        c.into_iter().map(|x| x as f64).collect(),
                    ));
                }
                v
            },
        ),
        (
            "csi_rpcs.svg",
            format!("{}: CSI calls per second{per}", ctx.scenario),
            "calls/s",
            vec![
                line(0, "calls finished", rate(|s| s.rpcs)),
                line(1, "errors (code not Ok)", rate(|s| s.rpc_errors)),
            ],
        ),
    ];
    if let Some(h) = p.iter().map(|s| s.hcr).collect::<Option<Vec<u64>>>()
        && !p.is_empty()
    {
        charts.push((
            "mds_requests.svg",
            format!(
                "{}: MDS handle_client_request per second{per}",
                ctx.scenario
            ),
            "requests/s",
            vec![line(0, "fake-ceph hcr/s (measured)", rates(&t, &h))],
        ));
    }
    let attach_trouble =
        p.last().is_some_and(|s| s.forbidden > 0 || s.killed > 0) || p.iter().any(|s| s.stuck > 0);
    if ctx.attach_required || attach_trouble {
        charts.push((
            "forbidden.svg",
            format!(
                "{}: 403 no path found to object per second{per}",
                ctx.scenario
            ),
            "403s/s",
            vec![line(1, "node GETs refused", rate(|s| s.forbidden))],
        ));
        charts.push((
            "stuck.svg",
            format!("{}: stuck pods", ctx.scenario),
            "pods",
            vec![
                line(
                    1,
                    &format!("not Running after {:.0} s", ctx.stuck_after_s),
                    gauge(|s| u64::from(s.stuck)),
                ),
                line(0, "killed by the script (total)", gauge(|s| s.killed)),
            ],
        ));
    }
    let mut out = Vec::new();
    for (file, title, y_desc, lines) in charts {
        let svg = chart(&title, y_desc, &xs, &lines, ctx.teardown_s).map_err(|message| {
            PlotError::Draw {
                file: file.to_owned(),
                message,
            }
        })?;
        std::fs::write(dir.join(file), svg).map_err(|source| PlotError::Write {
            file: file.to_owned(),
            source,
        })?;
        out.push(Plot {
            file: file.to_owned(),
            title,
        });
    }
    Ok(out)
}

/// The points of each `<polyline>` in an SVG written by [`write_all`], in document order
/// (axes and legend keys included): for tests and checks of the files.
pub fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for chunk in svg.split("<polyline").skip(1) {
        let Some(start) = chunk.find("points=\"") else {
            continue;
        };
        let rest = &chunk[start + "points=\"".len()..];
        let Some(end) = rest.find('"') else {
            continue;
        };
        let pts = rest[..end]
            .split_whitespace()
            .filter_map(|xy| {
                let (x, y) = xy.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect();
        out.push(pts);
    }
    out
}

/// `report.md`'s section on the plots.
pub fn markdown(plots: &[Plot]) -> String {
    let mut s = String::new();
    for p in plots {
        let _ = writeln!(s, "### {}\n\n![{}]({})\n", p.title, p.title, p.file);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SimTime {
        SimTime(s * 1_000_000_000)
    }

    /// A sample at `s` seconds with `n` in every counter and gauge.
    fn sample(s: u64, n: u64) -> Sample {
        Sample {
            t: at(s),
            running: n as u32,
            pending: 0,
            stuck: 0,
            sessions: n,
            rpcs: n,
            rpc_errors: n / 2,
            forbidden: 0,
            killed: 0,
            hcr: Some(10 * n),
            ceph_sessions: Some(n),
        }
    }

    fn check_rates(t: &[u64], c: &[u64], expected: &[f64]) {
        let t: Vec<SimTime> = t.iter().map(|s| at(*s)).collect();
        assert_eq!(rates(&t, c), expected);
    }

    #[test]
    fn rates_are_counter_growth_per_second() {
        check_rates(&[], &[], &[]);
        check_rates(&[0], &[5], &[0.0]);
        check_rates(&[0, 1, 3], &[0, 4, 10], &[0.0, 4.0, 3.0]);
        // Time that did not move, and a counter that went down, give 0.
        check_rates(&[0, 0, 1], &[0, 7, 3], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn sampling_is_due_once_per_period_before_the_next_event() {
        let mut s = Series::default();
        let mut taken = Vec::new();
        while let Some(t) = s.due(SimTime(2_500_000_000)) {
            taken.push(t);
            s.record(sample(t.0 / 1_000_000_000, 0));
        }
        assert_eq!(taken, [at(0), at(1), at(2)]);
        assert_eq!(s.due(SimTime(2_999_999_999)), None);
        // An event at the instant itself runs before the sample.
        assert_eq!(s.due(at(3)), None);
        assert_eq!(s.due(SimTime(3_000_000_001)), Some(at(3)));
    }

    #[test]
    fn a_long_run_keeps_at_most_max_points_and_exact_counters() {
        let mut s = Series::default();
        let n = 5 * MAX_POINTS as u64 + 3;
        for i in 0..n {
            let t = s.due(SimTime(at(i).0 + 1)).expect("due");
            assert_eq!(t, at(i));
            s.record(sample(i, i));
        }
        s.finish(sample(n, n));
        let p = s.points();
        assert!(p.len() <= MAX_POINTS + 1, "{}", p.len());
        assert!(p.len() > MAX_POINTS / 2, "{}", p.len());
        assert_eq!(s.step_s(), 8.0);
        // Evenly spaced from 0 on the stride, then the final point.
        for (i, x) in p[..p.len() - 1].iter().enumerate() {
            assert_eq!(x.t, at(8 * i as u64));
            assert_eq!(x.rpcs, 8 * i as u64);
        }
        assert_eq!(p[p.len() - 1].t, at(n));
        // Peaks come from the full resolution: 10 requests a second all along.
        let h = s.hcr().expect("hcr");
        assert_eq!(h.total, 10 * n);
        assert_eq!(h.peak_per_s, 10.0);
        assert_eq!(h.mean_per_s, 10.0);
        assert_eq!(s.peak_rpcs_per_s(), 1.0);
        let c = s.columns();
        assert_eq!(c.t_s.len(), p.len());
        assert_eq!(c.rpcs.len(), p.len());
        assert_eq!(c.fake_ceph_hcr.map(|v| v.len()), Some(p.len()));
    }

    #[test]
    fn the_mock_back_end_has_no_mds_counters() {
        let mut s = Series::default();
        let mut x = sample(0, 1);
        x.hcr = None;
        x.ceph_sessions = None;
        s.record(x);
        s.finish(x);
        assert_eq!(s.points().len(), 1);
        assert_eq!(s.hcr(), None);
        assert_eq!(s.columns().fake_ceph_hcr, None);
        assert_eq!(Series::default().hcr(), None);
    }

    #[test]
    fn axis_labels_drop_decimals_of_whole_numbers() {
        let check = |v: f64, expected: &str| assert_eq!(label(&v), expected);
        check(0.0, "0");
        check(100.0, "100");
        check(2.5, "2.5");
        check(0.1, "0.1");
    }

    #[test]
    fn polylines_are_read_back() {
        assert_eq!(
            polylines(
                r#"<svg><polyline fill="none" points="1,2 3,4 "/><polyline points=""/></svg>"#
            ),
            vec![vec![(1.0, 2.0), (3.0, 4.0)], vec![]]
        );
        assert!(polylines("<svg/>").is_empty());
    }

    /// The data curves: polylines with one point per sample.
    fn curves(svg: &str, n: usize) -> Vec<Vec<(f64, f64)>> {
        polylines(svg)
            .into_iter()
            .filter(|l| l.len() == n)
            .collect()
    }

    #[test]
    fn every_plot_has_a_curve_per_line_with_every_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Series::default();
        for i in 0..50 {
            let mut x = sample(i, i.min(20));
            x.forbidden = 3 * i;
            x.stuck = u32::from(i > 10);
            s.record(x);
        }
        let ctx = Context {
            scenario: "unit",
            replicas: 20,
            attach_required: true,
            stuck_after_s: 300.0,
            teardown_s: Some(40.0),
        };
        let plots = write_all(&s, ctx, dir.path()).expect("plots");
        let files: Vec<&str> = plots.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "pods.svg",
                "mds_sessions.svg",
                "csi_rpcs.svg",
                "mds_requests.svg",
                "forbidden.svg",
                "stuck.svg"
            ]
        );
        let want = [2, 2, 2, 1, 1, 2];
        for (f, n) in files.iter().zip(want) {
            let svg = std::fs::read_to_string(dir.path().join(f)).expect("svg");
            assert!(svg.starts_with("<svg"), "{f}");
            assert!(svg.contains("simulated time (s)"), "{f}");
            assert_eq!(curves(&svg, 50).len(), n, "{f}");
        }
        // Running climbs to 20 and stays: the curve goes up (smaller y) and ends flat.
        let svg = std::fs::read_to_string(dir.path().join("pods.svg")).expect("svg");
        let run = &curves(&svg, 50)[0];
        assert!(run[49].1 < run[0].1);
        assert_eq!(run[49].1, run[21].1);
        assert!(markdown(&plots).contains("![unit: pods Running (20 replicas)](pods.svg)"));
    }

    #[test]
    fn an_empty_or_idle_series_still_draws() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = Context {
            scenario: "empty",
            replicas: 0,
            attach_required: false,
            stuck_after_s: f64::NAN,
            teardown_s: None,
        };
        let plots = write_all(&Series::default(), ctx, dir.path()).expect("plots");
        assert_eq!(plots.len(), 3);
        let mut s = Series::default();
        s.record(Sample::default());
        let plots = write_all(&s, ctx, dir.path()).expect("plots");
        assert_eq!(plots.len(), 3);
        assert!(dir.path().join("csi_rpcs.svg").exists());
    }
}
