//! Batched, resumable backfill of a column on a large table, in the heap's physical order.
//!
//! Each batch is its own short transaction, `UPDATE ... WHERE ctid >= '(a,0)' AND ctid <
//! '(b,0)' AND column IS NULL`: a TID range scan (PostgreSQL 14+) reads exactly the pages
//! `a..b`, so the whole pass reads the table once, sequentially, whatever its key (uuid keys in
//! key order would read a random page per row). The number of pages per batch adapts to a time
//! budget per batch ([`Backfill::budget`]): a batch holds its rows' locks until it commits, so
//! the budget bounds how long a concurrent writer can wait on it. When even one page is over
//! budget the engine updates a page a few rows at a time, down to one row, and says so.
//!
//! Killed halfway, the committed batches stay; a rerun walks again and finds only the rows
//! still NULL (rows done are skipped, never rewritten). A final sweep catches rows written
//! behind the cursor by concurrent writers (an insert may land in free space of any page).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::sea_query::{
    Alias, Expr, PostgresQueryBuilder, Query, SelectStatement, SubQueryStatement, UpdateStatement,
    Value,
};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::plan::pg;

/// Test hook: when non-zero, a backfill fails after this many committed batches, leaving the
/// database exactly as a killed process would (the migration is not recorded as applied).
pub static INTERRUPT_AFTER_BATCHES: AtomicU64 = AtomicU64::new(0);

/// Largest batch, in pages (64 MiB of 8 kB pages): beyond it a batch gains nothing.
const MAX_PAGES: u64 = 8_192;
/// The first batch takes at most this many pages, whatever the row hint: its cost is unknown.
const FIRST_PAGES_MAX: u64 = 8;
/// Default time budget per batch, overridden by `TENANTRY_BACKFILL_BUDGET_MS`.
const DEFAULT_BUDGET: Duration = Duration::from_millis(20);

/// The type of the key (kept for callers of the key-walking engine; the heap walk needs no key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `uuid` keys.
    Uuid,
    /// `bigint` / `bigserial` keys.
    BigInt,
    /// `integer` / `serial` keys.
    Int,
}

/// Where a tenant-root child takes its value from: its parent row, through a foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentValue {
    /// The parent table's schema.
    pub schema: String,
    /// The parent table.
    pub table: String,
    /// The parent's column whose value the child takes (e.g. `tenant_id`).
    pub value_column: String,
    /// The foreign key: pairs of (child column, parent column).
    pub on: Vec<(String, String)>,
}

impl ParentValue {
    /// `schema.table.value_column`, joined on `on`'s (child column, parent column) pairs.
    pub fn new(schema: &str, table: &str, value_column: &str, on: &[(&str, &str)]) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            value_column: value_column.into(),
            on: on
                .iter()
                .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    Constant(Value),
    Parent(ParentValue),
}

/// Sets `column` on every row of `schema.table` where it is NULL, in batches.
#[derive(Debug, Clone)]
pub struct Backfill {
    schema: String,
    table: String,
    key: String,
    key_type: KeyType,
    column: String,
    source: Source,
    batch_rows: u64,
    budget: Duration,
}

/// How one batch was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// Every NULL row of the pages `first_page .. first_page + pages`.
    Pages {
        /// The first page.
        first_page: u64,
        /// How many pages.
        pages: u64,
    },
    /// At most `limit` NULL rows of one page (one page was over budget).
    Rows {
        /// The page.
        page: u64,
        /// At most this many rows.
        limit: u64,
    },
    /// At most `limit` NULL rows anywhere (the final sweep).
    Sweep {
        /// At most this many rows.
        limit: u64,
    },
}

/// One committed batch, as the engine ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// What it covered.
    pub kind: BatchKind,
    /// Rows it updated.
    pub rows: u64,
    /// How long the statement took (its row locks were held at most this long).
    pub elapsed: Duration,
}

/// What a run did, batch by batch.
#[derive(Debug, Clone, Default)]
pub struct BackfillReport {
    /// Every committed batch, in order.
    pub batches: Vec<Batch>,
    /// True when a single row's update took longer than the budget: the budget could not be
    /// met, and batches were one row each.
    pub budget_missed: bool,
}

impl BackfillReport {
    /// Rows updated in total.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.rows).sum()
    }
}

/// The walk's current cut: pages per batch, or rows of one page when one page is too much.
#[derive(Debug, Clone, Copy)]
enum Cut {
    Pages(u64),
    Rows(u64),
}

impl Backfill {
    /// A backfill of `column` to the constant `value` (e.g. the default tenant).
    pub fn new(schema: &str, table: &str, column: &str, value: impl Into<Value>) -> Self {
        Self::with_source(schema, table, column, Source::Constant(value.into()))
    }

    /// A backfill of `column` from the parent row: `child.column = parent.value_column`,
    /// joined through `parent.on`. Rows without a parent, or whose parent's value is NULL,
    /// stay NULL (the caller counts and refuses those before it starts).
    pub fn from_parent(schema: &str, table: &str, column: &str, parent: ParentValue) -> Self {
        Self::with_source(schema, table, column, Source::Parent(parent))
    }

    fn with_source(schema: &str, table: &str, column: &str, source: Source) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            key: "id".into(),
            key_type: KeyType::Uuid,
            column: column.into(),
            source,
            batch_rows: batch_rows_from_env(),
            budget: budget_from_env(),
        }
    }

    /// The key column and its type. A hint only: the heap walk needs no key, so tables keyed
    /// by anything (or by nothing) are backfilled the same way.
    pub fn key(mut self, key: &str, key_type: KeyType) -> Self {
        self.key = key.into();
        self.key_type = key_type;
        self
    }

    /// Rows of the first batch (default `TENANTRY_BACKFILL_BATCH` or 5,000), converted to
    /// pages from the table's rows per page and capped at 8 pages (its cost is unknown); later
    /// batches follow the budget.
    pub fn batch_size(mut self, rows: u64) -> Self {
        self.batch_rows = std::cmp::max(rows, 1);
        self
    }

    /// The time budget of one batch (default `TENANTRY_BACKFILL_BUDGET_MS` or 20 ms): the
    /// longest a concurrent writer should wait on a row the backfill has locked.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    fn name(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn child_col(&self, col: &str) -> Expr {
        Expr::col((
            Alias::new(&self.schema),
            Alias::new(&self.table),
            Alias::new(col),
        ))
    }

    fn ctid(&self) -> Expr {
        self.child_col("ctid")
    }

    /// `WHERE ctid >= '(first,0)' AND ctid < '(end,0)'`: a TID range scan of those pages.
    fn pages_filter(&self, first: u64, end: u64) -> [Expr; 2] {
        use sea_orm::sea_query::ExprTrait;
        [
            self.ctid().gte(Expr::cust(format!("'({first},0)'::tid"))),
            self.ctid().lt(Expr::cust(format!("'({end},0)'::tid"))),
        ]
    }

    /// The join to the parent and "the parent has a value", for tenant-root backfills.
    fn parent_filter(&self, parent: &ParentValue) -> Vec<Expr> {
        use sea_orm::sea_query::ExprTrait;
        let mut out: Vec<Expr> = parent
            .on
            .iter()
            .map(|(child, par)| self.child_col(child).eq(parent_col_ref(parent, par)))
            .collect();
        out.push(parent_col_ref(parent, &parent.value_column).is_not_null());
        out
    }

    /// The UPDATE of one batch, restricted by `filters` (on the child table).
    fn update(&self, filters: Vec<Expr>) -> UpdateStatement {
        use sea_orm::sea_query::ExprTrait;
        let mut up = Query::update();
        up.table((Alias::new(&self.schema), Alias::new(&self.table)));
        match &self.source {
            Source::Constant(v) => {
                up.value(Alias::new(&self.column), v.clone());
            }
            Source::Parent(p) => {
                up.value(Alias::new(&self.column), parent_col_ref(p, &p.value_column))
                    .from((Alias::new(&p.schema), Alias::new(&p.table)));
                for f in self.parent_filter(p) {
                    up.and_where(f);
                }
            }
        }
        up.and_where(self.child_col(&self.column).is_null());
        for f in filters {
            up.and_where(f);
        }
        up.to_owned()
    }

    /// `SELECT expr` of at most `limit` rows still to do (NULL, and with a parent value),
    /// optionally only in the pages `first..end`.
    fn todo(&self, expr: Expr, limit: u64, pages: Option<(u64, u64)>) -> SelectStatement {
        use sea_orm::sea_query::ExprTrait;
        let mut sel: SelectStatement = Query::select();
        sel.expr(expr)
            .from((Alias::new(&self.schema), Alias::new(&self.table)))
            .and_where(self.child_col(&self.column).is_null())
            .limit(limit);
        if let Some((first, end)) = pages {
            for f in self.pages_filter(first, end) {
                sel.and_where(f);
            }
        }
        if let Source::Parent(p) = &self.source {
            sel.from((Alias::new(&p.schema), Alias::new(&p.table)));
            for f in self.parent_filter(p) {
                sel.and_where(f);
            }
        }
        sel
    }

    /// `ctid = ANY(ARRAY(SELECT ctid ... LIMIT n))`: at most `limit` rows still to do (with a
    /// parent), as a TID scan of exactly those rows.
    fn rows_filter(&self, limit: u64, pages: Option<(u64, u64)>) -> Expr {
        let sel = self.todo(self.ctid(), limit, pages);
        Expr::cust_with_exprs(
            "$1 = ANY(ARRAY $2)",
            [
                self.ctid(),
                Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(sel))),
            ],
        )
    }

    fn statement(&self, kind: BatchKind) -> UpdateStatement {
        match kind {
            BatchKind::Pages { first_page, pages } => {
                self.update(self.pages_filter(first_page, first_page + pages).to_vec())
            }
            BatchKind::Rows { page, limit } => {
                self.update(vec![self.rows_filter(limit, Some((page, page + 1)))])
            }
            BatchKind::Sweep { limit } => self.update(vec![self.rows_filter(limit, None)]),
        }
    }

    /// What `plan` prints for this step: one batch's SQL, and the sweep's.
    pub fn render(&self) -> Vec<String> {
        let from = match &self.source {
            Source::Constant(_) => String::from("a constant"),
            Source::Parent(p) => format!("{}.{}.{}", p.schema, p.table, p.value_column),
        };
        vec![
            format!(
                "-- backfill {}.{} from {from}, walking the heap in page ranges (each batch its own transaction, sized to a {} ms budget; resumable), then a sweep until no NULL remains:",
                self.name(),
                self.column,
                self.budget.as_millis()
            ),
            format!(
                "{};",
                self.statement(BatchKind::Pages {
                    first_page: 0,
                    pages: 64
                })
                .to_string(PostgresQueryBuilder)
            ),
            format!(
                "{};",
                self.statement(BatchKind::Sweep {
                    limit: self.batch_rows
                })
                .to_string(PostgresQueryBuilder)
            ),
        ]
    }

    /// Pages in the table now, and its rows per page (from the planner's statistics).
    async fn size<C: ConnectionTrait>(&self, db: &C) -> Result<(u64, f64), DbErr> {
        let probe = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT (pg_relation_size(c.oid) / current_setting('block_size')::bigint)::bigint, \
                    greatest(c.reltuples, 0)::float8, greatest(c.relpages, 0)::float8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            [self.schema.clone().into(), self.table.clone().into()],
        );
        let Some(row) = db.query_one_raw(probe).await? else {
            return Err(DbErr::Migration(format!(
                "backfill: table {} does not exist",
                self.name()
            )));
        };
        let pages = u64::try_from(row.try_get_by_index::<i64>(0)?).unwrap_or(0);
        let tuples = row.try_get_by_index::<f64>(1)?;
        let stat_pages = row.try_get_by_index::<f64>(2)?;
        // Never analysed: assume narrow rows, the budget corrects it after one batch.
        let per_page = if tuples > 0.0 && stat_pages > 0.0 {
            (tuples / stat_pages).max(1.0)
        } else {
            50.0
        };
        Ok((pages, per_page))
    }

    /// Runs every batch until no row is left NULL, showing progress on a terminal. While it
    /// runs, its session sets `tenantry.backfill = on` so backfill-aware triggers (our
    /// `set_updated_at`) leave the row's other columns alone.
    pub async fn run<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        self.run_reporting(db).await.map(|_| ())
    }

    /// [`Backfill::run`], returning what each batch did.
    pub async fn run_reporting<C: ConnectionTrait>(&self, db: &C) -> Result<BackfillReport, DbErr> {
        db.execute_unprepared("SET tenantry.backfill = 'on'")
            .await?;
        let result = self.run_batches(db).await;
        let reset = db.execute_unprepared("RESET tenantry.backfill").await;
        let report = result?;
        reset.map(|_| report)
    }

    async fn run_batches<C: ConnectionTrait>(&self, db: &C) -> Result<BackfillReport, DbErr> {
        let (pages, per_page) = self.size(db).await?;
        let name = self.name();
        tracing::info!(table = %name, pages, budget_ms = self.budget.as_millis() as u64,
            "backfilling {} in heap order", self.column);
        let mut run = Progress::new(&name, &self.column, pages);
        let mut report = BackfillReport::default();
        let started = Instant::now();

        // The walk covers the pages that exist now; rows added later are the sweep's.
        // Start small (a batch of unknown cost must not blow the budget) and double from there.
        let first_pages = ((self.batch_rows as f64) / per_page).ceil() as u64;
        let mut cut = Cut::Pages(first_pages.clamp(1, FIRST_PAGES_MAX));
        let mut page = 0u64;
        while page < pages {
            let kind = match cut {
                Cut::Pages(n) => BatchKind::Pages {
                    first_page: page,
                    pages: n.min(pages - page),
                },
                Cut::Rows(limit) => BatchKind::Rows { page, limit },
            };
            let batch = self.batch(db, kind, &mut report).await?;
            match kind {
                BatchKind::Pages { pages: n, .. } => page += n,
                // A page is done when a batch found fewer rows than it may take.
                BatchKind::Rows { limit, .. } if batch.rows < limit => page += 1,
                _ => {}
            }
            cut = self.adapt(cut, &batch, per_page, &mut report);
            run.advance(page, report.rows(), started);
        }

        // The sweep: rows written behind the cursor (or before an interrupted run's walk).
        let mut limit = ((match cut {
            Cut::Pages(n) => n as f64 * per_page,
            Cut::Rows(r) => r as f64,
        }) as u64)
            .max(1);
        loop {
            let batch = self
                .batch(db, BatchKind::Sweep { limit }, &mut report)
                .await?;
            run.advance(page, report.rows(), started);
            // Fewer rows than asked for does not mean done: a row a concurrent writer updated
            // between the sweep's SELECT and its UPDATE has moved (new ctid) and was skipped.
            // Done is a round that updates nothing while nothing is left.
            if batch.rows == 0 && !self.any_left(db).await? {
                break;
            }
            limit = match self.adapt(Cut::Rows(limit), &batch, per_page, &mut report) {
                Cut::Rows(r) => r,
                Cut::Pages(n) => (n as f64 * per_page) as u64,
            }
            .max(1);
        }
        run.finish();
        tracing::info!(table = %name, batches = report.batches.len(), rows = report.rows(),
            elapsed_ms = started.elapsed().as_millis() as u64, "backfill finished");
        Ok(report)
    }

    /// Whether any row still has work (NULL, and for a tenant-root backfill a parent value).
    async fn any_left<C: ConnectionTrait>(&self, db: &C) -> Result<bool, DbErr> {
        let sel = self.todo(Expr::val(1), 1, None);
        Ok(db.query_one_raw(pg(&sel)).await?.is_some())
    }

    /// Runs one batch (its own transaction: the connection is in autocommit) and records it.
    async fn batch<C: ConnectionTrait>(
        &self,
        db: &C,
        kind: BatchKind,
        report: &mut BackfillReport,
    ) -> Result<Batch, DbErr> {
        let t = Instant::now();
        let done = db.execute_raw(pg(&self.statement(kind))).await?;
        let batch = Batch {
            kind,
            rows: done.rows_affected(),
            elapsed: t.elapsed(),
        };
        report.batches.push(batch);
        let stop_after = INTERRUPT_AFTER_BATCHES.load(Ordering::SeqCst);
        if stop_after != 0 && report.batches.len() as u64 >= stop_after {
            return Err(DbErr::Migration(format!(
                "backfill of {} interrupted after {} batches (test hook)",
                self.name(),
                report.batches.len()
            )));
        }
        Ok(batch)
    }

    /// The next cut from the last batch's time: halve (or cut in proportion) when over the
    /// budget, double when under half of it; below one page, rows of one page; below one row,
    /// say the budget cannot be met.
    fn adapt(&self, cut: Cut, batch: &Batch, per_page: f64, report: &mut BackfillReport) -> Cut {
        let budget = self.budget.as_secs_f64();
        let took = batch.elapsed.as_secs_f64();
        if took > budget {
            // Aim at 70 % of the budget, and at least halve.
            let factor = if took > 0.0 {
                (0.7 * budget / took).min(0.5)
            } else {
                0.5
            };
            match cut {
                Cut::Pages(n) if n > 1 => Cut::Pages(((n as f64 * factor) as u64).max(1)),
                Cut::Pages(_) => {
                    tracing::warn!(table = %self.name(), took_ms = took * 1e3,
                        "one page is over the backfill budget: updating a few rows at a time");
                    Cut::Rows(((per_page * factor) as u64).max(1))
                }
                Cut::Rows(r) if r > 1 => Cut::Rows(((r as f64 * factor) as u64).max(1)),
                Cut::Rows(_) => {
                    if !report.budget_missed {
                        tracing::warn!(table = %self.name(), took_ms = took * 1e3,
                            budget_ms = budget * 1e3,
                            "a single row's update is over the backfill budget: going on one row per batch (a writer may wait this long on one row)");
                    }
                    report.budget_missed = true;
                    Cut::Rows(1)
                }
            }
        } else if took < budget / 2.0 && batch.rows > 0 {
            match cut {
                Cut::Pages(n) => Cut::Pages((n * 2).min(MAX_PAGES)),
                Cut::Rows(r) if (r * 2) as f64 >= per_page => Cut::Pages(1),
                Cut::Rows(r) => Cut::Rows(r * 2),
            }
        } else {
            cut
        }
    }
}

/// `parent.col` as an expression (a helper so the join reads left to right).
fn parent_col_ref(parent: &ParentValue, col: &str) -> Expr {
    Expr::col((
        Alias::new(&parent.schema),
        Alias::new(&parent.table),
        Alias::new(col),
    ))
}

/// The terminal progress bar: pages walked (for the time left) and rows per second.
struct Progress {
    bar: ProgressBar,
    label: String,
}

impl Progress {
    fn new(table: &str, column: &str, pages: u64) -> Self {
        let bar = ProgressBar::new(pages.max(1));
        if let Ok(style) =
            ProgressStyle::with_template("  {msg} [{bar:30}] {percent}% of {len} pages, {eta} left")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        let label = format!("backfill {table}.{column}");
        bar.set_message(label.clone());
        Self { bar, label }
    }

    fn advance(&mut self, page: u64, rows: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_position(page);
        self.bar.set_message(format!(
            "{}: {rows} rows, {:.0} rows/s",
            self.label,
            rows as f64 / secs
        ));
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}

fn batch_rows_from_env() -> u64 {
    std::env::var("TENANTRY_BACKFILL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5_000)
}

fn budget_from_env() -> Duration {
    std::env::var("TENANTRY_BACKFILL_BUDGET_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_BUDGET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_tid_range_batch_and_a_tid_sweep() {
        let b = Backfill::new("public", "projects", "tenant_id", 7i64);
        let sql = b.render().join("\n");
        assert!(
            sql.contains(r#""public"."projects"."ctid" >= ('(0,0)'::tid)"#),
            "{sql}"
        );
        assert!(sql.contains(r#"< ('(64,0)'::tid)"#), "{sql}");
        assert!(sql.contains("= ANY(ARRAY (SELECT"), "{sql}");
    }

    #[test]
    fn renders_the_parent_join() {
        let b = Backfill::from_parent(
            "public",
            "tasks",
            "tenant_id",
            ParentValue::new("public", "projects", "tenant_id", &[("project_id", "id")]),
        );
        let sql = b.render().join("\n");
        assert!(
            sql.contains(
                r#"SET "tenant_id" = "public"."projects"."tenant_id" FROM "public"."projects""#
            ),
            "{sql}"
        );
        assert!(
            sql.contains(r#""public"."tasks"."project_id" = "public"."projects"."id""#),
            "{sql}"
        );
        assert!(
            sql.contains(r#""public"."projects"."tenant_id" IS NOT NULL"#),
            "{sql}"
        );
    }
}
