//! `harness compare DIR_A DIR_B`: two runs side by side, read from their `summary.json`.
//!
//! A run is known here by its report alone: the module reads the serialized
//! `report::Summary` through its own small serde structs, which take only the figures
//! compared, default what a file lacks and ignore what they do not know. So summaries
//! written before a field existed and after one was added both parse; in particular
//! `mode` ("simulated", "real control plane", "cluster"; issue 16), absent from the
//! summaries of the simulator alone, is read as "simulated". It imports nothing of the
//! simulator.
//!
//! A figure of a simulated run comes from the simulator's models (its simulated clock,
//! seeded latency models); the same figure of a run on a real control plane or cluster
//! is a wall-clock measurement. Every figure carries its side's origin (`modelled` or
//! `measured`), so a model is never read as a measurement; the wall time and peak RSS
//! are measured in every mode.
//!
//! Start at [`compare`]; [`run_compare`] is the subcommand.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// The mode of a summary that does not say.
pub const SIMULATED: &str = "simulated";

/// What the header says about the figures' origins.
pub const NOTE: &str = "Figures marked [modelled] come from a simulated run: the \
simulator's models on its simulated clock (seeded latency models), not measurements. \
Figures marked [measured] come from a run on a real control plane or cluster and are \
wall-clock measurements; wall time and peak RSS are measured in every mode. B − A and \
B / A are shown where both sides have a number (B − A exact to the decimals of the figures).";

/// `harness compare`: two runs' reports side by side.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// The first run's output directory (side A): holds its summary.json.
    pub dir_a: PathBuf,
    /// The second run's output directory (side B).
    pub dir_b: PathBuf,
    /// Also write compare.md, compare.json and compare-startup.svg to this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Percentiles as `summary.json` holds them, milliseconds.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th.
    pub p90_ms: f64,
    /// 99th.
    pub p99_ms: f64,
}

/// One row of `rpcs`: calls of one method that ended with one code.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RpcRow {
    /// The RPC.
    pub method: String,
    /// The gRPC code.
    pub code: String,
    /// Their durations; only the count is compared.
    pub sim: Percentiles,
}

/// `csi_calls`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct CallTotals {
    /// Calls finished.
    pub calls: u64,
    /// Of which with a code other than `Ok`.
    pub errors: u64,
}

/// The parts of `wall` compared.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Wall {
    /// The whole run, seconds.
    pub total_s: Option<f64>,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// What the comparison reads of one `summary.json`: the scenario and seed are required
/// (a file without them is not a run's summary), everything else defaults when absent.
#[derive(Debug, Clone, Deserialize)]
pub struct RunSummary {
    /// Scenario name.
    pub scenario: String,
    /// The master seed.
    pub seed: u64,
    /// "simulated", "real control plane" or "cluster"; absent in older summaries.
    #[serde(default)]
    pub mode: Option<String>,
    /// Why the deploy phase ended.
    #[serde(default)]
    pub outcome: Option<String>,
    /// Replicas asked for.
    #[serde(default)]
    pub replicas: Option<u64>,
    /// Running when the deploy phase ended.
    #[serde(default)]
    pub running: Option<u64>,
    /// Seconds until every replica was Running.
    #[serde(default)]
    pub all_running_s: Option<f64>,
    /// Pod creation → Running.
    #[serde(default)]
    pub pod_startup: Option<Percentiles>,
    /// Pod bound to a node → Running.
    #[serde(default)]
    pub schedule_to_run: Option<Percentiles>,
    /// CSI calls by method and code.
    #[serde(default)]
    pub rpcs: Vec<RpcRow>,
    /// CSI calls and errors in all.
    #[serde(default)]
    pub csi_calls: Option<CallTotals>,
    /// Node authorizer 403s by resource.
    #[serde(default)]
    pub forbidden: BTreeMap<String, u64>,
    /// Pods not Running when the deploy phase ended.
    #[serde(default)]
    pub pods_not_running: BTreeMap<String, String>,
    /// Wall-clock figures.
    #[serde(default)]
    pub wall: Wall,
    /// Whether teardown was clean.
    #[serde(default)]
    pub clean: Option<bool>,
}

impl RunSummary {
    /// The run's mode, "simulated" when the summary does not say.
    pub fn mode(&self) -> &str {
        self.mode.as_deref().unwrap_or(SIMULATED)
    }

    /// Calls of `method` that ended with `code` (0 without such a row).
    fn calls(&self, method: &str, code: &str) -> u64 {
        self.rpcs
            .iter()
            .filter(|r| r.method == method && r.code == code)
            .map(|r| r.sim.count)
            .sum()
    }
}

/// Reads `dir/summary.json`; errors name the directory or the file, and why.
pub fn load(dir: &Path) -> anyhow::Result<RunSummary> {
    let meta =
        std::fs::metadata(dir).with_context(|| format!("run directory {}", dir.display()))?;
    anyhow::ensure!(
        meta.is_dir(),
        "run directory {}: not a directory",
        dir.display()
    );
    let file = dir.join("summary.json");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a harness run summary", file.display()))
}

/// Where a figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The simulator's models, on its simulated clock.
    Modelled,
    /// A wall-clock measurement.
    Measured,
}

impl Origin {
    /// The origin of a run's figures in `mode`.
    pub fn of_mode(mode: &str) -> Self {
        if mode == SIMULATED {
            Self::Modelled
        } else {
            Self::Measured
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Modelled => "[modelled]",
            Self::Measured => "[measured]",
        }
    }
}

/// A figure's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A number: a count as the summary holds it, a time or size rounded to its row's
    /// precision ([`SECONDS`], [`MILLISECONDS`], [`MIB`] decimals).
    Number(f64),
    /// Words (scenario, mode, outcome, ...).
    Text(String),
    /// The summary has none (never happened, or an older summary).
    Missing,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Number(x) => write!(f, "{x}"),
            Self::Text(s) => f.write_str(s),
            Self::Missing => f.write_str("-"),
        }
    }
}

/// One side's figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The value.
    pub value: Value,
    /// Where it comes from (none for names and parameters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.origin, &self.value) {
            (Some(o), Value::Number(_)) => write!(f, "{} {}", self.value, o.tag()),
            _ => write!(f, "{}", self.value),
        }
    }
}

/// One figure of both runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// What it is, with its unit.
    pub figure: String,
    /// Run A's.
    pub a: Cell,
    /// Run B's.
    pub b: Cell,
    /// B − A, to the decimals of the two figures, when both are numbers.
    pub b_minus_a: Option<String>,
    /// B / A when both are numbers and A is not 0.
    pub b_over_a: Option<f64>,
}

/// Decimals in the shortest representation of `x`.
fn decimals(x: f64) -> usize {
    format!("{x}").split_once('.').map_or(0, |(_, f)| f.len())
}

/// `b - a` rounded to the decimals of the longer of the two, trailing zeros dropped:
/// the exact decimal difference of the figures shown, without the float's noise.
pub fn difference(a: f64, b: f64) -> String {
    let s = format!("{:.*}", decimals(a).max(decimals(b)), b - a);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    // No "-0" when the two are equal.
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

impl Row {
    fn new(figure: &str, a: Cell, b: Cell) -> Self {
        let (b_minus_a, b_over_a) = match (&a.value, &b.value) {
            (Value::Number(x), Value::Number(y)) => (
                Some(difference(*x, *y)),
                (*x != 0.0).then(|| y / x).filter(|r| r.is_finite()),
            ),
            _ => (None, None),
        };
        Self {
            figure: figure.to_owned(),
            a,
            b,
            b_minus_a,
            b_over_a,
        }
    }
}

/// One run as the comparison names it.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// Its output directory.
    pub dir: PathBuf,
    /// Scenario name.
    pub scenario: String,
    /// The master seed.
    pub seed: u64,
    /// Its mode ("simulated" when its summary does not say).
    pub mode: String,
    /// The origin of its figures.
    pub origin: Origin,
}

impl Side {
    fn of(dir: &Path, s: &RunSummary) -> Self {
        Self {
            dir: dir.to_owned(),
            scenario: s.scenario.clone(),
            seed: s.seed,
            mode: s.mode().to_owned(),
            origin: Origin::of_mode(s.mode()),
        }
    }
}

/// The figures of the start-up plot, seconds: p50, p90, p99 start-up, all Running.
type StartupBars = [Option<f64>; 4];

/// Two runs side by side (`compare.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Where the figures come from.
    pub note: &'static str,
    /// Run A.
    pub a: Side,
    /// Run B.
    pub b: Side,
    /// The figures.
    pub rows: Vec<Row>,
    #[serde(skip)]
    bars: [StartupBars; 2],
}

/// Compares the runs in `dir_a` and `dir_b`.
pub fn compare(dir_a: &Path, dir_b: &Path) -> anyhow::Result<Comparison> {
    let a = load(dir_a)?;
    let b = load(dir_b)?;
    Ok(Comparison::of(
        Side::of(dir_a, &a),
        Side::of(dir_b, &b),
        &a,
        &b,
    ))
}

/// Builds the rows of two summaries.
struct Rows<'a> {
    a: &'a RunSummary,
    b: &'a RunSummary,
    origins: [Origin; 2],
    rows: Vec<Row>,
}

/// An optional count as a value.
fn count(v: Option<u64>) -> Value {
    v.map_or(Value::Missing, |n| Value::Number(n as f64))
}

/// Decimals shown for seconds (to the millisecond), milliseconds and MiB.
pub const SECONDS: i32 = 3;
/// See [`SECONDS`].
pub const MILLISECONDS: i32 = 1;
/// See [`SECONDS`].
pub const MIB: i32 = 1;

/// `x` rounded to `places` decimals: a summary's float keeps far more digits than its
/// measurement (or model) can vouch for.
pub fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// An optional time or size as a value, rounded to `places` decimals.
fn number(v: Option<f64>, places: i32) -> Value {
    v.map_or(Value::Missing, |x| Value::Number(round_to(x, places)))
}

impl<'a> Rows<'a> {
    /// Words of both sides, without an origin.
    fn text(&mut self, figure: &str, f: impl Fn(&RunSummary) -> Option<String>) {
        let cell = |s: &RunSummary| Cell {
            value: f(s).map_or(Value::Missing, Value::Text),
            origin: None,
        };
        self.rows.push(Row::new(figure, cell(self.a), cell(self.b)));
    }

    /// A figure of `origin` on both sides (`None`: a parameter; `Some`: that origin).
    fn with(
        &mut self,
        figure: &str,
        origin: [Option<Origin>; 2],
        f: impl Fn(&RunSummary) -> Value,
    ) {
        let a = Cell {
            value: f(self.a),
            origin: origin[0],
        };
        let b = Cell {
            value: f(self.b),
            origin: origin[1],
        };
        self.rows.push(Row::new(figure, a, b));
    }

    /// A figure of the run: modelled or measured as its side's mode says.
    fn run(&mut self, figure: &str, f: impl Fn(&RunSummary) -> Value) {
        let [a, b] = self.origins;
        self.with(figure, [Some(a), Some(b)], f);
    }

    /// A wall-clock figure, measured in every mode.
    fn wall(&mut self, figure: &str, f: impl Fn(&RunSummary) -> Value) {
        let m = Some(Origin::Measured);
        self.with(figure, [m, m], f);
    }

    fn identity(&mut self) {
        self.text("scenario", |s| Some(s.scenario.clone()));
        self.text("seed", |s| Some(s.seed.to_string()));
        self.text("mode", |s| Some(s.mode().to_owned()));
        self.text("outcome", |s| s.outcome.clone());
        self.with("replicas", [None, None], |s| count(s.replicas));
        self.run("running", |s| count(s.running));
        self.run("time to all Running (s)", |s| {
            number(s.all_running_s, SECONDS)
        });
    }

    fn latencies(&mut self) {
        type Pick = fn(&Percentiles) -> f64;
        let qs: [(&str, Pick); 3] = [
            ("p50", |p| p.p50_ms),
            ("p90", |p| p.p90_ms),
            ("p99", |p| p.p99_ms),
        ];
        for (q, pick) in qs {
            self.run(&format!("pod start-up {q} (ms)"), |s| {
                number(s.pod_startup.as_ref().map(pick), MILLISECONDS)
            });
        }
        for (q, pick) in qs {
            self.run(&format!("schedule→run {q} (ms)"), |s| {
                number(s.schedule_to_run.as_ref().map(pick), MILLISECONDS)
            });
        }
    }

    /// A row per (method, code) either side has, 0 on the side without it; then totals.
    fn csi(&mut self) {
        let keys: BTreeSet<(String, String)> = self
            .a
            .rpcs
            .iter()
            .chain(&self.b.rpcs)
            .map(|r| (r.method.clone(), r.code.clone()))
            .collect();
        for (m, c) in keys {
            self.run(&format!("CSI {m} {c} (calls)"), |s| {
                Value::Number(s.calls(&m, &c) as f64)
            });
        }
        self.run("CSI calls", |s| count(s.csi_calls.map(|t| t.calls)));
        self.run("CSI errors (code not Ok)", |s| {
            count(s.csi_calls.map(|t| t.errors))
        });
    }

    /// 403s by resource either side has, 0 on the side without; stuck pods.
    fn trouble(&mut self) {
        let resources: BTreeSet<String> = self
            .a
            .forbidden
            .keys()
            .chain(self.b.forbidden.keys())
            .cloned()
            .collect();
        for r in &resources {
            self.run(&format!("403 no path found: {r}"), |s| {
                Value::Number(s.forbidden.get(r).copied().unwrap_or(0) as f64)
            });
        }
        self.run("403s in all", |s| {
            Value::Number(s.forbidden.values().sum::<u64>() as f64)
        });
        self.run("pods not Running (recorded)", |s| {
            Value::Number(s.pods_not_running.len() as f64)
        });
        self.run("replicas − running", |s| match (s.replicas, s.running) {
            (Some(r), Some(n)) => Value::Number(r as f64 - n as f64),
            _ => Value::Missing,
        });
    }

    fn costs(&mut self) {
        self.wall("wall time (s)", |s| number(s.wall.total_s, SECONDS));
        self.wall("peak RSS (MiB)", |s| number(s.wall.peak_rss_mib, MIB));
        self.text("teardown", |s| {
            s.clean
                .map(|c| if c { "clean" } else { "LEAKS" }.to_owned())
        });
    }
}

/// The start-up plot's figures of a run, seconds.
fn startup_bars(s: &RunSummary) -> StartupBars {
    let p = s.pod_startup;
    [
        p.map(|p| p.p50_ms / 1000.0),
        p.map(|p| p.p90_ms / 1000.0),
        p.map(|p| p.p99_ms / 1000.0),
        s.all_running_s,
    ]
}

impl Comparison {
    /// The comparison of summaries `a` and `b`, read from sides `sa` and `sb`.
    pub fn of(sa: Side, sb: Side, a: &RunSummary, b: &RunSummary) -> Self {
        let mut r = Rows {
            a,
            b,
            origins: [sa.origin, sb.origin],
            rows: Vec::new(),
        };
        r.identity();
        r.latencies();
        r.csi();
        r.trouble();
        r.costs();
        Self {
            note: NOTE,
            a: sa,
            b: sb,
            rows: r.rows,
            bars: [startup_bars(a), startup_bars(b)],
        }
    }

    /// The row of `figure`.
    pub fn row(&self, figure: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.figure == figure)
    }

    /// The comparison as markdown (also what is printed): a header naming both runs
    /// and their modes, the note on origins, and the table.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# harness compare\n\n");
        for (name, side) in [("A", &self.a), ("B", &self.b)] {
            let _ = writeln!(
                s,
                "- {name}: {} (seed {}), mode {}: figures {}, from {}",
                side.scenario,
                side.seed,
                side.mode,
                side.origin.tag(),
                side.dir.join("summary.json").display()
            );
        }
        let _ = writeln!(s, "\n{NOTE}\n");
        s.push_str(&self.table());
        s
    }

    /// The table, its columns padded.
    fn table(&self) -> String {
        let mut cells = vec![[
            "figure".to_owned(),
            format!("A ({})", self.a.mode),
            format!("B ({})", self.b.mode),
            "B − A".to_owned(),
            "B / A".to_owned(),
        ]];
        for r in &self.rows {
            cells.push([
                r.figure.clone(),
                r.a.to_string(),
                r.b.to_string(),
                r.b_minus_a.clone().unwrap_or_default(),
                r.b_over_a.map(|x| format!("{x:.3}")).unwrap_or_default(),
            ]);
        }
        let mut width = [3usize; 5];
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut s = String::new();
        for (i, row) in cells.iter().enumerate() {
            s.push_str(&table_line(row.iter().map(String::as_str), &width));
            if i == 0 {
                let dashes: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
                s.push_str(&table_line(dashes.iter().map(String::as_str), &width));
            }
        }
        s
    }

    /// Writes `compare.md`, `compare.json` and `compare-startup.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        };
        write("compare.md", &self.markdown())?;
        write("compare.json", &serde_json::to_string_pretty(self)?)?;
        let svg = self
            .startup_svg()
            .map_err(|e| anyhow::anyhow!("drawing compare-startup.svg: {e}"))?;
        write("compare-startup.svg", &svg)
    }

    /// The legend of one side in the plot.
    fn legend(side: &Side, name: &str) -> String {
        format!(
            "{name}: {} seed {} ({}, {})",
            side.scenario,
            side.seed,
            side.mode,
            match side.origin {
                Origin::Modelled => "modelled",
                Origin::Measured => "measured",
            }
        )
    }

    /// A bar chart of p50/p90/p99 start-up and time to all Running, A beside B.
    pub fn startup_svg(&self) -> Result<String, String> {
        let legends = [Self::legend(&self.a, "A"), Self::legend(&self.b, "B")];
        bar_chart(
            "pod start-up and time to all Running",
            &[
                "start-up p50",
                "start-up p90",
                "start-up p99",
                "all Running",
            ],
            &legends,
            &self.bars,
        )
    }
}

/// One line of a markdown table with padded cells.
fn table_line<'a>(cells: impl Iterator<Item = &'a str>, width: &[usize]) -> String {
    let mut s = String::from("|");
    for (c, w) in cells.zip(width) {
        let pad = w.saturating_sub(c.chars().count());
        let _ = write!(s, " {c}{} |", " ".repeat(pad));
    }
    s.push('\n');
    s
}

/// The bars' colours, A then B.
const COLORS: [RGBColor; 2] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28)];

/// A grouped bar chart as SVG text: one group per category (centred on its index), one
/// bar per side; a missing value draws no bar.
fn bar_chart(
    title: &str,
    categories: &[&str],
    sides: &[String; 2],
    values: &[StartupBars; 2],
) -> Result<String, String> {
    let top = values
        .iter()
        .flatten()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    // Headroom above the highest bar for the legend.
    let y_max = if top > 0.0 { top * 1.4 } else { 1.0 };
    let n = categories.len();
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-9 || i < 0.0 {
            return String::new();
        }
        categories
            .get(i as usize)
            .map_or(String::new(), |c| (*c).to_owned())
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..(n as f64 - 0.5), 0.0..y_max)
            .map_err(|e| e.to_string())?;
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc("seconds")
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (side, vals)) in sides.iter().zip(values).enumerate() {
            let color = COLORS[k];
            let x0 = |i: usize| i as f64 - 0.4 + 0.4 * k as f64;
            let bars = vals.iter().enumerate().filter_map(|(i, v)| {
                let v = v.filter(|v| v.is_finite())?;
                Some(Rectangle::new(
                    [(x0(i), 0.0), (x0(i) + 0.38, v)],
                    color.filled(),
                ))
            });
            c.draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(side.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// `harness compare`: prints the comparison and writes its files with `--out`.
pub fn run_compare(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    let c = compare(&args.dir_a, &args.dir_b)?;
    print!("{}", c.markdown());
    if let Some(out) = &args.out {
        c.write(out)?;
        println!("\ncompare: {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_keep_the_decimals_of_the_figures() {
        let check = |a: f64, b: f64, want: &str| assert_eq!(difference(a, b), want, "{a} {b}");
        check(1.0, 3.0, "2");
        check(12.345, 13.1, "0.755");
        check(0.1, 0.3, "0.2");
        check(5.5, 5.5, "0");
        check(0.250480229, 0.278894229, "0.028414");
        check(3.25, 1.0, "-2.25");
        check(0.0, 0.0, "0");
    }

    #[test]
    fn figures_are_rounded_to_their_precision() {
        assert_eq!(round_to(513.841520622, SECONDS), 513.842);
        assert_eq!(round_to(513074.3033180001, MILLISECONDS), 513074.3);
        assert_eq!(
            format!("{}", Value::Number(round_to(1041.57421875, MIB))),
            "1041.6"
        );
        assert_eq!(round_to(2.0, SECONDS), 2.0);
    }

    #[test]
    fn the_mode_decides_the_origin() {
        let check = |m: &str, o: Origin| assert_eq!(Origin::of_mode(m), o, "{m}");
        check("simulated", Origin::Modelled);
        check("real control plane", Origin::Measured);
        check("cluster", Origin::Measured);
    }

    #[test]
    fn a_ratio_needs_two_numbers_and_a_nonzero_a() {
        let cell = |v: Value| Cell {
            value: v,
            origin: None,
        };
        let check = |a: Value, b: Value, ratio: Option<f64>, diff: Option<&str>| {
            let r = Row::new("x", cell(a), cell(b));
            assert_eq!(r.b_over_a, ratio);
            assert_eq!(r.b_minus_a.as_deref(), diff);
        };
        check(Value::Number(2.0), Value::Number(3.0), Some(1.5), Some("1"));
        check(Value::Number(0.0), Value::Number(3.0), None, Some("3"));
        check(Value::Missing, Value::Number(3.0), None, None);
        check(Value::Text("a".into()), Value::Text("b".into()), None, None);
    }
}
