//! The report: rows of measurements with their baselines, ratios and targets; rendered as a
//! table on stdout, as JSON (`--json`), and as the markdown block of docs/BENCHMARKS.md.

use std::fmt::Write as _;

use serde::Serialize;

use super::stats::Stat;

/// Which way a target bounds a number.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Cmp {
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// At least.
    #[serde(rename = ">=")]
    Ge,
}

/// A target: on the ratio to the baseline, or on the value itself.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Target {
    /// `ratio` or `value`.
    pub on: &'static str,
    /// The comparison.
    pub cmp: Cmp,
    /// The bound.
    pub bound: f64,
}

impl Target {
    fn holds(&self, x: f64) -> bool {
        match self.cmp {
            Cmp::Le => x <= self.bound,
            Cmp::Ge => x >= self.bound,
        }
    }

    fn describe(&self, unit: &str) -> String {
        let op = match self.cmp {
            Cmp::Le => "<=",
            Cmp::Ge => ">=",
        };
        if self.on == "ratio" {
            format!("ratio {op} {}", trim(self.bound))
        } else {
            format!("{op} {} {unit}", trim(self.bound))
        }
    }
}

/// One measured quantity: ours, the baseline, their ratio, and the target.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub label: String,
    /// `ms`, `ops/s`, `s`, `round trips`, ...
    pub unit: &'static str,
    /// Ours: the median for latencies, the rate for throughput, the value otherwise.
    pub ours: f64,
    /// Ours, 95th percentile latency (ms) where it matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ours_p95_ms: Option<f64>,
    /// Ours, 99th percentile latency (ms) where it matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ours_p99_ms: Option<f64>,
    /// The baseline, same unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The baseline's 95th percentile latency (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p95_ms: Option<f64>,
    /// The baseline's 99th percentile latency (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_p99_ms: Option<f64>,
    /// `ours / baseline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// The target, if this row has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// A short remark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Row {
    /// A plain value.
    pub fn value(label: impl Into<String>, unit: &'static str, value: f64) -> Self {
        Self {
            label: label.into(),
            unit,
            ours: value,
            ours_p95_ms: None,
            ours_p99_ms: None,
            baseline: None,
            baseline_p95_ms: None,
            baseline_p99_ms: None,
            ratio: None,
            target: None,
            ok: None,
            note: None,
        }
    }

    /// A latency against a baseline latency: medians, p95s, ratio of the medians.
    pub fn latency(label: impl Into<String>, ours: &Stat, base: &Stat) -> Self {
        let mut row = Self::value(label, "ms", ours.median_ms);
        row.ours_p95_ms = Some(ours.p95_ms);
        row.ours_p99_ms = Some(ours.p99_ms);
        row.baseline = Some(base.median_ms);
        row.baseline_p95_ms = Some(base.p95_ms);
        row.baseline_p99_ms = Some(base.p99_ms);
        row.ratio = ratio(ours.median_ms, base.median_ms);
        row
    }

    /// A latency with no baseline.
    pub fn latency_alone(label: impl Into<String>, ours: &Stat) -> Self {
        let mut row = Self::value(label, "ms", ours.median_ms);
        row.ours_p95_ms = Some(ours.p95_ms);
        row.ours_p99_ms = Some(ours.p99_ms);
        row
    }

    /// A throughput against a baseline throughput (p99 latencies alongside).
    pub fn throughput(
        label: impl Into<String>,
        ours: f64,
        ours_lat: &Stat,
        base: f64,
        base_lat: &Stat,
    ) -> Self {
        let mut row = Self::value(label, "ops/s", ours);
        row.ours_p95_ms = Some(ours_lat.p95_ms);
        row.ours_p99_ms = Some(ours_lat.p99_ms);
        row.baseline = Some(base);
        row.baseline_p95_ms = Some(base_lat.p95_ms);
        row.baseline_p99_ms = Some(base_lat.p99_ms);
        row.ratio = ratio(ours, base);
        row
    }

    /// A value against a baseline value.
    pub fn compared(label: impl Into<String>, unit: &'static str, ours: f64, base: f64) -> Self {
        let mut row = Self::value(label, unit, ours);
        row.baseline = Some(base);
        row.ratio = ratio(ours, base);
        row
    }

    /// Sets a target on the ratio and evaluates it.
    pub fn target_ratio(mut self, cmp: Cmp, bound: f64) -> Self {
        let t = Target {
            on: "ratio",
            cmp,
            bound,
        };
        self.ok = self.ratio.map(|r| t.holds(r));
        self.target = Some(t);
        self
    }

    /// Sets a target on the value and evaluates it.
    pub fn target_value(mut self, cmp: Cmp, bound: f64) -> Self {
        let t = Target {
            on: "value",
            cmp,
            bound,
        };
        self.ok = Some(t.holds(self.ours));
        self.target = Some(t);
        self
    }

    /// Adds a remark.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Adds a remark after the one already there (or as the first), if there is one to add.
    pub fn also(mut self, more: Option<String>) -> Self {
        if let Some(more) = more {
            self.note = Some(match self.note.take() {
                Some(n) => format!("{n}; {more}"),
                None => more,
            });
        }
        self
    }

    fn ours_cell(&self) -> String {
        cell(self.unit, self.ours, self.ours_p95_ms, self.ours_p99_ms)
    }

    fn baseline_cell(&self) -> String {
        match self.baseline {
            Some(b) => cell(self.unit, b, self.baseline_p95_ms, self.baseline_p99_ms),
            None => "-".into(),
        }
    }

    fn ratio_cell(&self) -> String {
        self.ratio.map_or("-".into(), |r| format!("{r:.3}"))
    }

    fn target_cell(&self) -> String {
        self.target.map_or("-".into(), |t| t.describe(self.unit))
    }

    fn ok_cell(&self) -> &'static str {
        match self.ok {
            Some(true) => "yes",
            Some(false) => "MISS",
            None => "",
        }
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| a / b)
}

fn cell(unit: &str, v: f64, p95: Option<f64>, p99: Option<f64>) -> String {
    let main = match unit {
        "ms" => format!("{} ms", fmt_ms(v)),
        "ops/s" => format!("{v:.0}/s"),
        "s" => format!("{v:.2} s"),
        _ => format!("{} {unit}", trim(v)),
    };
    match (unit, p95, p99) {
        ("ms", Some(p95), _) => format!("{main} (p95 {})", fmt_ms(p95)),
        (_, _, Some(p99)) => format!("{main} (p99 {} ms)", fmt_ms(p99)),
        _ => main,
    }
}

/// Milliseconds with three significant-ish digits.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A scenario's outcome.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Status {
    /// Ran.
    Ran,
    /// Not selected or switched off.
    Skipped(String),
    /// Failed with this error.
    Failed(String),
}

/// A labelled block of EXPLAIN output.
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    /// What was explained.
    pub title: String,
    /// The plan's lines.
    pub lines: Vec<String>,
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// `1`..`7`.
    pub id: u8,
    /// Its title.
    pub title: String,
    /// Whether it ran.
    pub status: Status,
    /// Wall time of the scenario, setup included (s).
    pub wall_s: f64,
    /// The measurements.
    pub rows: Vec<Row>,
    /// Findings and explanations.
    pub notes: Vec<String>,
    /// EXPLAIN snippets.
    pub explain: Vec<Explain>,
}

impl Scenario {
    /// An empty scenario that ran.
    pub fn new(id: u8, title: &str) -> Self {
        Self {
            id,
            title: title.into(),
            status: Status::Ran,
            wall_s: 0.0,
            rows: vec![],
            notes: vec![],
            explain: vec![],
        }
    }

    /// A scenario that did not run.
    pub fn with_status(id: u8, title: &str, status: Status) -> Self {
        let mut s = Self::new(id, title);
        s.status = status;
        s
    }

    /// Whether every target of the scenario is met (`None` when it has none or did not run).
    pub fn passed(&self) -> Option<bool> {
        let oks: Vec<bool> = self.rows.iter().filter_map(|r| r.ok).collect();
        (!oks.is_empty()).then(|| oks.iter().all(|x| *x))
    }
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// CPU model.
    pub cpu: String,
    /// Memory (GiB).
    pub memory_gib: f64,
    /// `SELECT version()`.
    pub postgres: String,
    /// Server settings that matter for the numbers.
    pub postgres_settings: String,
    /// `dev (unoptimized)` or `release`.
    pub profile: String,
    /// The 1-minute load average when the run started (other work on the machine skews it).
    pub loadavg_at_start: String,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// When (UTC, from the server).
    pub started_at: String,
    /// Total wall time (s).
    pub wall_s: f64,
    /// The share of the machine's time stolen by the host during the run (`/proc/stat`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steal: Option<f64>,
    /// The machine.
    pub machine: Machine,
    /// The sizes used.
    pub params: serde_json::Value,
    /// The scenarios.
    pub scenarios: Vec<Scenario>,
}

impl Report {
    /// The plain-text table for the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let header = [
            "#",
            "measurement",
            "ours",
            "baseline",
            "ratio",
            "target",
            "ok",
        ];
        let mut lines: Vec<[String; 7]> = vec![];
        for s in &self.scenarios {
            match &s.status {
                Status::Ran => {
                    for r in &s.rows {
                        lines.push([
                            s.id.to_string(),
                            r.label.clone(),
                            r.ours_cell(),
                            r.baseline_cell(),
                            r.ratio_cell(),
                            r.target_cell(),
                            r.ok_cell().into(),
                        ]);
                    }
                }
                other => lines.push([
                    s.id.to_string(),
                    format!("{}: {}", s.title, status_text(other)),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]),
            }
        }
        let mut widths = header.map(|h| h.chars().count());
        for l in &lines {
            for (i, c) in l.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        // The measurement column may be long; cap it so the table stays readable.
        widths[1] = widths[1].min(64);
        let fmt_line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let w = widths[i];
                let c: String = if c.chars().count() > w {
                    c.chars().take(w - 1).chain(['…']).collect()
                } else {
                    c.clone()
                };
                let pad = w - c.chars().count();
                if i == 0 || i == 1 {
                    s.push_str(&c);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(&c);
                }
                s.push_str("  ");
            }
            s.trim_end().to_owned()
        };
        let _ = writeln!(
            out,
            "tenantry bench: {} ({} CPUs, {:.0} GiB, {}, profile {})",
            self.started_at,
            self.machine.nproc,
            self.machine.memory_gib,
            short_pg(&self.machine.postgres),
            self.machine.profile
        );
        let _ = writeln!(out, "{}", fmt_line(&header.map(String::from)));
        let _ = writeln!(
            out,
            "{}",
            widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  ")
        );
        let mut last = None;
        for (l, id) in lines.iter().map(|l| (l, l[0].clone())) {
            if last.as_ref().is_some_and(|x| *x != id) {
                let _ = writeln!(out);
            }
            last = Some(id);
            let _ = writeln!(out, "{}", fmt_line(l));
        }
        let _ = writeln!(out);
        for s in &self.scenarios {
            if s.notes.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{}. {}", s.id, s.title);
            for n in &s.notes {
                let _ = writeln!(out, "   - {n}");
            }
        }
        let _ = writeln!(out, "wall time: {:.1} s", self.wall_s);
        if let Some(steal) = self.steal {
            let _ = writeln!(
                out,
                "host steal: {:.0}% of the machine's time",
                steal * 100.0
            );
        }
        out
    }

    /// The markdown block written into docs/BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Generated by `{}` on {}.\n",
            self.command, self.started_at
        );
        let _ = writeln!(out, "| machine | |\n|---|---|");
        let _ = writeln!(out, "| CPUs (nproc) | {} ({}) |", m.nproc, m.cpu);
        let _ = writeln!(out, "| memory | {:.1} GiB |", m.memory_gib);
        let _ = writeln!(out, "| PostgreSQL | {} |", m.postgres);
        let _ = writeln!(out, "| server settings | {} |", m.postgres_settings);
        let _ = writeln!(out, "| build profile | {} |", m.profile);
        let _ = writeln!(out, "| load average at start | {} |", m.loadavg_at_start);
        let _ = writeln!(out, "| total wall time | {:.0} s |", self.wall_s);
        if let Some(steal) = self.steal {
            let _ = writeln!(
                out,
                "| host steal during the run | {:.0}% of the machine's time |",
                steal * 100.0
            );
        }
        let _ = writeln!(
            out,
            "| parameters | `{}` |\n",
            serde_json::to_string(&self.params).unwrap_or_default()
        );
        for s in &self.scenarios {
            let verdict = match (&s.status, s.passed()) {
                (Status::Ran, Some(true)) => " (targets met)".to_owned(),
                (Status::Ran, Some(false)) => " (a target is missed)".to_owned(),
                (Status::Ran, None) => String::new(),
                (other, _) => format!(" ({})", status_text(other)),
            };
            let _ = writeln!(out, "### {}. {}{verdict}\n", s.id, s.title);
            if !s.rows.is_empty() {
                let _ = writeln!(
                    out,
                    "| measurement | ours | baseline | ratio | target | ok |\n|---|---:|---:|---:|---|---|"
                );
                for r in &s.rows {
                    let label = match &r.note {
                        Some(n) => format!("{} <br><sub>{n}</sub>", r.label),
                        None => r.label.clone(),
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        label.replace('|', "\\|"),
                        r.ours_cell(),
                        r.baseline_cell(),
                        r.ratio_cell(),
                        r.target_cell().replace("<=", "≤").replace(">=", "≥"),
                        r.ok_cell()
                    );
                }
                let _ = writeln!(out);
            }
            for n in &s.notes {
                let _ = writeln!(out, "- {n}");
            }
            if !s.notes.is_empty() {
                let _ = writeln!(out);
            }
            for e in &s.explain {
                let _ = writeln!(out, "{}:\n\n```text", e.title);
                for l in &e.lines {
                    let _ = writeln!(out, "{l}");
                }
                let _ = writeln!(out, "```\n");
            }
        }
        out
    }
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Ran => "ran".into(),
        Status::Skipped(why) => format!("skipped: {why}"),
        Status::Failed(why) => format!("FAILED: {why}"),
    }
}

fn short_pg(v: &str) -> String {
    v.split(" on ").next().unwrap_or(v).to_owned()
}

/// Replaces the text between `<!-- bench:begin -->` and `<!-- bench:end -->` in `doc` (or
/// appends the block when the markers are missing).
pub fn splice(doc: &str, block: &str) -> String {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{BEGIN}\n{}{}",
            &doc[..b],
            block.trim_end().to_owned() + "\n",
            &doc[e..]
        ),
        _ => format!("{}\n{BEGIN}\n{}{END}\n", doc.trim_end(), block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_ratios() {
        let a = Stat {
            n: 10,
            median_ms: 1.02,
            p95_ms: 2.0,
            p99_ms: 3.0,
            max_ms: 4.0,
            mean_ms: 1.0,
        };
        let b = Stat {
            median_ms: 1.0,
            ..a
        };
        let row = Row::latency("x", &a, &b).target_ratio(Cmp::Le, 1.05);
        assert_eq!(row.ok, Some(true));
        let row = Row::throughput("t", 80.0, &a, 100.0, &b).target_ratio(Cmp::Ge, 0.85);
        assert_eq!(row.ok, Some(false));
        let row = Row::value("stall", "ms", 250.0).target_value(Cmp::Le, 200.0);
        assert_eq!(row.ok, Some(false));
    }

    #[test]
    fn splice_replaces_between_markers() {
        let doc = "head\n<!-- bench:begin -->\nold\n<!-- bench:end -->\ntail\n";
        let out = splice(doc, "new\n");
        assert_eq!(
            out,
            "head\n<!-- bench:begin -->\nnew\n<!-- bench:end -->\ntail\n"
        );
        let appended = splice("head\n", "new\n");
        assert!(appended.contains("<!-- bench:begin -->\nnew\n<!-- bench:end -->"));
    }
}
