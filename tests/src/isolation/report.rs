//! The matrix: one row per table, one column per attack, then the catalog findings.

use std::fmt::{self, Write as _};

use migration::audit::Finding;

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// The attack was stopped; what stopped it.
    Pass(String),
    /// The attack got through; what happened.
    Fail(String),
    /// The attack does not apply to this table.
    NotApplicable,
}

impl Cell {
    /// A passing cell.
    pub fn pass(why: impl Into<String>) -> Self {
        Self::Pass(why.into())
    }
    /// A failing cell.
    pub fn fail(why: impl Into<String>) -> Self {
        Self::Fail(why.into())
    }
    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self, Self::Fail(_))
    }
    fn short(&self) -> &'static str {
        match self {
            Self::Pass(_) => "pass",
            Self::Fail(_) => "FAIL",
            Self::NotApplicable => "-",
        }
    }
    fn json(&self) -> serde_json::Value {
        match self {
            Self::Pass(d) => serde_json::json!({ "result": "pass", "detail": d }),
            Self::Fail(d) => serde_json::json!({ "result": "fail", "detail": d }),
            Self::NotApplicable => serde_json::json!({ "result": "n/a" }),
        }
    }
}

/// One row: a subject (table, login, function, pool) and its cells.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was attacked.
    pub subject: String,
    /// `(attack, cell)` pairs.
    pub cells: Vec<(&'static str, Cell)>,
}

/// Everything `test-isolation` found.
#[derive(Debug, Clone, Default)]
pub struct IsolationReport {
    /// Tenant tables × attacks.
    pub matrix: Vec<Row>,
    /// Tenant tables × the legacy login's attacks.
    pub legacy: Vec<Row>,
    /// Login-, function-, global-table- and pool-level checks.
    pub other: Vec<Row>,
    /// The catalog audit.
    pub catalog: Vec<Finding>,
    /// Tables that could not be seeded.
    pub seed_failures: Vec<(String, String)>,
}

impl IsolationReport {
    /// Every failure as `(subject, check, detail)`.
    pub fn failures(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for row in self.matrix.iter().chain(&self.other) {
            for (attack, cell) in &row.cells {
                if let Cell::Fail(d) = cell {
                    out.push((row.subject.clone(), (*attack).to_owned(), d.clone()));
                }
            }
        }
        for row in &self.legacy {
            for (attack, cell) in &row.cells {
                if let Cell::Fail(d) = cell {
                    out.push((row.subject.clone(), format!("legacy_{attack}"), d.clone()));
                }
            }
        }
        for f in self.catalog.iter().filter(|f| !f.ok) {
            out.push((f.subject.clone(), f.check.clone(), f.detail.clone()));
        }
        for (t, e) in &self.seed_failures {
            out.push((t.clone(), "seed".into(), e.clone()));
        }
        out
    }

    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// The cell of the legacy login's `attack` for the table `subject`.
    pub fn legacy_cell(&self, subject: &str, attack: &str) -> Option<&Cell> {
        self.legacy
            .iter()
            .find(|r| r.subject == subject)
            .and_then(|r| r.cells.iter().find(|(a, _)| *a == attack).map(|(_, c)| c))
    }

    /// The cell of `attack` for `subject`, in the matrix or the other rows.
    pub fn cell(&self, subject: &str, attack: &str) -> Option<&Cell> {
        self.matrix
            .iter()
            .chain(&self.other)
            .find(|r| r.subject == subject)
            .and_then(|r| r.cells.iter().find(|(a, _)| *a == attack).map(|(_, c)| c))
    }

    /// The machine-readable report (`--json`).
    pub fn to_json(&self) -> serde_json::Value {
        let rows = |rows: &[Row]| {
            rows.iter()
                .map(|r| {
                    let cells: serde_json::Map<_, _> = r
                        .cells
                        .iter()
                        .map(|(a, c)| ((*a).to_owned(), c.json()))
                        .collect();
                    serde_json::json!({ "subject": r.subject, "checks": cells })
                })
                .collect::<Vec<_>>()
        };
        serde_json::json!({
            "passed": self.passed(),
            "matrix": rows(&self.matrix),
            "legacy": rows(&self.legacy),
            "other": rows(&self.other),
            "catalog": self.catalog.iter().map(|f| serde_json::json!({
                "check": f.check, "subject": f.subject, "ok": f.ok, "detail": f.detail
            })).collect::<Vec<_>>(),
            "seed_failures": self.seed_failures.iter().map(|(t, e)| serde_json::json!({"table": t, "error": e})).collect::<Vec<_>>(),
            "failures": self.failures().len(),
        })
    }
}

impl fmt::Display for IsolationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_matrix(f, "table", &self.matrix)?;
        if !self.legacy.is_empty() {
            writeln!(
                f,
                "\nas the legacy login (pinned to the default tenant), B's and A's ids set:"
            )?;
            write_matrix(f, "table", &self.legacy)?;
        }
        writeln!(f)?;
        for row in &self.other {
            for (check, cell) in &row.cells {
                let detail = match cell {
                    Cell::Pass(d) | Cell::Fail(d) => d.as_str(),
                    Cell::NotApplicable => "",
                };
                writeln!(
                    f,
                    "{:4}  {:24} {:40} {}",
                    cell.short(),
                    check,
                    row.subject,
                    detail
                )?;
            }
        }
        writeln!(f)?;
        for finding in &self.catalog {
            writeln!(
                f,
                "{:4}  {:24} {:40} {}",
                if finding.ok { "pass" } else { "FAIL" },
                finding.check,
                finding.subject,
                finding.detail
            )?;
        }
        let failures = self.failures();
        if !failures.is_empty() {
            writeln!(f, "\nfailures:")?;
            for (s, c, d) in &failures {
                writeln!(f, "  {s} {c}: {d}")?;
            }
        }
        let cells: usize = self
            .matrix
            .iter()
            .chain(&self.other)
            .chain(&self.legacy)
            .map(|r| r.cells.len())
            .sum();
        write!(
            f,
            "\n{} tables, {} attack cells, {} catalog checks: {}",
            self.matrix.len(),
            cells,
            self.catalog.len(),
            if failures.is_empty() {
                "all pass".to_owned()
            } else {
                format!("{} FAILED", failures.len())
            }
        )
    }
}

fn write_matrix(f: &mut fmt::Formatter<'_>, first: &str, rows: &[Row]) -> fmt::Result {
    let width = rows
        .iter()
        .map(|r| r.subject.len())
        .max()
        .unwrap_or(5)
        .max(5);
    if let Some(head) = rows.first() {
        let mut header = format!("{first:width$}");
        for (attack, _) in &head.cells {
            let _ = write!(header, " {:>14}", attack);
        }
        writeln!(f, "{header}")?;
        for row in rows {
            let mut line = format!("{:width$}", row.subject);
            for (_, cell) in &row.cells {
                let _ = write!(line, " {:>14}", cell.short());
            }
            writeln!(f, "{line}")?;
        }
    }
    Ok(())
}
