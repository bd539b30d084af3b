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
//! behind the cursor by concurrent writers (an insert may land in free space of any page): a
//! read-only search collects their ctids (one scan of the table, no row locked), then budgeted
//! batches update them by ctid; it ends when a search finds nothing.
//!
//! A tenant-root backfill ([`Backfill::from_parent`]) looks each child's parent up through the
//! parent's key index (the session disables hash and merge joins while it runs): a hash join
//! would read and hash the whole parent table in every batch, a cost that grows with the parent
//! table and that no batch size can bring under the budget.
//!
//! Every batch is logged at `debug` level (target `migration_kit::backfill`: its cut, rows,
//! duration and the next cut), every sweep search too, and the run's batch-duration p99 and
//! maximum at `info`.

mod controller;
mod tid;

pub use controller::{Controller, Cut, Event, Observed};
pub use tid::Tid;

use std::sync::Mutex;
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

/// Summaries of the latest runs in this process, newest last (at most [`RECENT_MAX`]).
static RECENT: Mutex<Vec<Summary>> = Mutex::new(Vec::new());
const RECENT_MAX: usize = 64;

/// What one finished run did, kept for callers that run backfills through a migrator and
/// never see the [`BackfillReport`] (the bench's scenario 3 reads them with [`take_recent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// `schema.table`.
    pub table: String,
    /// Batches run.
    pub batches: usize,
    /// Rows updated.
    pub rows: u64,
    /// The 99th percentile of batch durations.
    pub p99_batch: Duration,
    /// The longest batch.
    pub max_batch: Duration,
    /// The sweep's read-only searches.
    pub searches: usize,
}

/// The summaries of the runs finished since the last call, oldest first.
pub fn take_recent() -> Vec<Summary> {
    RECENT
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default()
}

fn remember(summary: Summary) {
    if let Ok(mut r) = RECENT.lock() {
        if r.len() >= RECENT_MAX {
            r.remove(0);
        }
        r.push(summary);
    }
}

/// A sweep search collects at most this many rows (then searches again after updating them).
const SWEEP_SEARCH_MAX: u64 = 100_000;
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
    /// At most `limit` rows the sweep's search found, by ctid.
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
    /// How long each of the sweep's read-only searches took (they lock no row).
    pub searches: Vec<Duration>,
}

impl BackfillReport {
    /// Rows updated in total.
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.rows).sum()
    }

    /// The longest batch: the longest any row stayed locked by the backfill.
    pub fn max_batch(&self) -> Duration {
        self.batches
            .iter()
            .map(|b| b.elapsed)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The batch duration at quantile `q` (0..=1, nearest rank).
    pub fn batch_quantile(&self, q: f64) -> Duration {
        let mut all: Vec<Duration> = self.batches.iter().map(|b| b.elapsed).collect();
        if all.is_empty() {
            return Duration::ZERO;
        }
        all.sort();
        let rank = ((q.clamp(0.0, 1.0) * all.len() as f64).ceil() as usize).clamp(1, all.len());
        all[rank - 1]
    }
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
    /// parent) in the pages `first..end`, as a TID scan of exactly those rows.
    fn rows_filter(&self, limit: u64, pages: (u64, u64)) -> Expr {
        let sel = self.todo(self.ctid(), limit, Some(pages));
        Expr::cust_with_exprs(
            "$1 = ANY(ARRAY $2)",
            [
                self.ctid(),
                Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(sel))),
            ],
        )
    }

    /// `ctid = ANY('{...}'::tid[])`: exactly the rows the sweep's search found.
    fn tids_filter(&self, tids: &[Tid]) -> Expr {
        Expr::cust_with_exprs(
            format!("$1 = ANY({})", Tid::array_literal(tids)),
            [self.ctid()],
        )
    }

    /// The UPDATE of one walk batch.
    fn statement(&self, kind: BatchKind) -> UpdateStatement {
        match kind {
            BatchKind::Pages { first_page, pages } => {
                self.update(self.pages_filter(first_page, first_page + pages).to_vec())
            }
            BatchKind::Rows { page, limit } => {
                self.update(vec![self.rows_filter(limit, (page, page + 1))])
            }
            // The sweep's batches are built from their ctids (`sweep_statement`).
            BatchKind::Sweep { .. } => self.update(vec![self.tids_filter(&[])]),
        }
    }

    /// The UPDATE of one sweep batch: the rows at `tids` still to do.
    fn sweep_statement(&self, tids: &[Tid]) -> UpdateStatement {
        self.update(vec![self.tids_filter(tids)])
    }

    /// The sweep's read-only search: the ctids of at most `limit` rows still to do.
    fn search(&self, limit: u64) -> SelectStatement {
        self.todo(
            Expr::cust_with_exprs("$1::text", [self.ctid()]),
            limit,
            None,
        )
    }

    /// Session settings while this backfill runs, and how to undo them.
    fn session_settings(&self) -> (&'static str, &'static str) {
        match self.source {
            Source::Constant(_) => ("SET tenantry.backfill = 'on'", "RESET tenantry.backfill"),
            // One index lookup per child row: never hash (or sort) the whole parent per batch.
            Source::Parent(_) => (
                "SET tenantry.backfill = 'on'; SET enable_hashjoin = off; SET enable_mergejoin = off",
                "RESET tenantry.backfill; RESET enable_hashjoin; RESET enable_mergejoin",
            ),
        }
    }

    /// What `plan` prints for this step: one batch's SQL, and the sweep's.
    pub fn render(&self) -> Vec<String> {
        let from = match &self.source {
            Source::Constant(_) => String::from("a constant"),
            Source::Parent(p) => format!(
                "{}.{}.{} (one index lookup of the parent per row: the session sets enable_hashjoin and enable_mergejoin off)",
                p.schema, p.table, p.value_column
            ),
        };
        vec![
            format!(
                "-- backfill {}.{} from {from}, walking the heap in page ranges (each batch its own transaction, sized to a {} ms budget; resumable), then a sweep until a search finds no row left:",
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
            String::from("-- the sweep's search (read-only, locks no row):"),
            format!(
                "{};",
                self.search(SWEEP_SEARCH_MAX)
                    .to_string(PostgresQueryBuilder)
            ),
            String::from("-- then the rows found, a budgeted batch of their ctids at a time:"),
            format!(
                "{};",
                self.statement(BatchKind::Sweep { limit: 0 })
                    .to_string(PostgresQueryBuilder)
            ),
        ]
    }

    /// The plan PostgreSQL picks for one batch of `pages` pages from `first_page`, under the
    /// session settings the backfill runs with (`EXPLAIN`, without running it).
    pub async fn explain_batch<C: ConnectionTrait>(
        &self,
        db: &C,
        first_page: u64,
        pages: u64,
    ) -> Result<String, DbErr> {
        let (set, reset) = self.session_settings();
        db.execute_unprepared(set).await?;
        let sql = format!(
            "EXPLAIN {}",
            self.statement(BatchKind::Pages { first_page, pages })
                .to_string(PostgresQueryBuilder)
        );
        let rows = db
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await;
        db.execute_unprepared(reset).await?;
        let mut out = vec![];
        for row in rows? {
            out.push(row.try_get_by_index::<String>(0)?);
        }
        Ok(out.join("\n"))
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
    /// `set_updated_at`) leave the row's other columns alone (and, for a tenant-root backfill,
    /// turns hash and merge joins off, so each child finds its parent through the index).
    pub async fn run<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        self.run_reporting(db).await.map(|_| ())
    }

    /// [`Backfill::run`], returning what each batch did.
    pub async fn run_reporting<C: ConnectionTrait>(&self, db: &C) -> Result<BackfillReport, DbErr> {
        let (set, reset) = self.session_settings();
        db.execute_unprepared(set).await?;
        let result = self.run_batches(db).await;
        let reset = db.execute_unprepared(reset).await;
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
        // Start small (a batch of unknown cost must not blow the budget), grow from there.
        let mut ctl = Controller::new(self.budget, per_page, self.batch_rows);
        let mut page = 0u64;
        while page < pages {
            let cut = ctl.cut();
            let kind = match cut {
                Cut::Pages(n) => BatchKind::Pages {
                    first_page: page,
                    pages: n.min(pages - page),
                },
                Cut::Rows(limit) => BatchKind::Rows { page, limit },
            };
            let batch = self
                .batch(db, kind, pg(&self.statement(kind)), &mut report)
                .await?;
            let ran = match kind {
                BatchKind::Pages { pages: n, .. } => {
                    page += n;
                    Cut::Pages(n)
                }
                // A page is done when a batch found fewer rows than it may take.
                BatchKind::Rows { limit, .. } => {
                    if batch.rows < limit {
                        page += 1;
                    }
                    Cut::Rows(limit)
                }
                BatchKind::Sweep { limit } => Cut::Rows(limit),
            };
            self.observe(&mut ctl, ran, &batch, &mut report);
            run.advance(page, report.rows(), started);
        }

        // The sweep: rows written behind the cursor (or before an interrupted run's walk). A
        // search reads the table once without locking anything; the rows it found are updated
        // in budgeted batches by ctid. A row a writer updated in between has moved (new ctid)
        // and is skipped: the next search finds it. Done is a search that finds nothing (one
        // snapshot: no row to do was committed).
        loop {
            let t = Instant::now();
            let found = self.search_rows(db).await?;
            report.searches.push(t.elapsed());
            tracing::debug!(table = %name, found = found.len(),
                elapsed_ms = t.elapsed().as_secs_f64() * 1e3, "backfill sweep search");
            if found.is_empty() {
                break;
            }
            let mut rest = &found[..];
            while !rest.is_empty() {
                let take = usize::try_from(ctl.rows())
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                let (chunk, tail) = rest.split_at(take);
                rest = tail;
                let kind = BatchKind::Sweep {
                    limit: chunk.len() as u64,
                };
                let batch = self
                    .batch(db, kind, pg(&self.sweep_statement(chunk)), &mut report)
                    .await?;
                self.observe(&mut ctl, Cut::Rows(chunk.len() as u64), &batch, &mut report);
                run.advance(page, report.rows(), started);
            }
        }
        run.finish();
        tracing::info!(table = %name, batches = report.batches.len(), rows = report.rows(),
            searches = report.searches.len(),
            batch_p99_ms = report.batch_quantile(0.99).as_secs_f64() * 1e3,
            batch_max_ms = report.max_batch().as_secs_f64() * 1e3,
            elapsed_ms = started.elapsed().as_millis() as u64, "backfill finished");
        remember(Summary {
            table: name,
            batches: report.batches.len(),
            rows: report.rows(),
            p99_batch: report.batch_quantile(0.99),
            max_batch: report.max_batch(),
            searches: report.searches.len(),
        });
        Ok(report)
    }

    /// The ctids of the rows still to do (NULL, and for a tenant-root backfill a parent value).
    async fn search_rows<C: ConnectionTrait>(&self, db: &C) -> Result<Vec<Tid>, DbErr> {
        let rows = db.query_all_raw(pg(&self.search(SWEEP_SEARCH_MAX))).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let text = row.try_get_by_index::<String>(0)?;
            out.push(Tid::parse(&text).ok_or_else(|| {
                DbErr::Migration(format!(
                    "backfill of {}: unexpected ctid {text:?}",
                    self.name()
                ))
            })?);
        }
        Ok(out)
    }

    /// Runs one batch (its own transaction: the connection is in autocommit) and records it.
    async fn batch<C: ConnectionTrait>(
        &self,
        db: &C,
        kind: BatchKind,
        statement: Statement,
        report: &mut BackfillReport,
    ) -> Result<Batch, DbErr> {
        let t = Instant::now();
        let done = db.execute_raw(statement).await?;
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

    /// Feeds one batch to the controller, logs it, and warns when the budget cannot be met.
    fn observe(&self, ctl: &mut Controller, ran: Cut, batch: &Batch, report: &mut BackfillReport) {
        let event = ctl.observe(Observed {
            cut: ran,
            rows: batch.rows,
            elapsed: batch.elapsed,
        });
        tracing::debug!(table = %self.name(), kind = ?batch.kind, rows = batch.rows,
            elapsed_ms = batch.elapsed.as_secs_f64() * 1e3, next = ?ctl.cut(), "backfill batch");
        let took_ms = batch.elapsed.as_secs_f64() * 1e3;
        match event {
            Some(Event::PageOverBudget) => tracing::warn!(table = %self.name(), took_ms,
                "one page is over the backfill budget: updating a few rows at a time"),
            Some(Event::RowOverBudget) => tracing::warn!(table = %self.name(), took_ms,
                budget_ms = self.budget.as_secs_f64() * 1e3,
                "a single row's update is over the backfill budget: going on one row per batch (a writer may wait this long on one row)"),
            None => {}
        }
        report.budget_missed = ctl.budget_missed();
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
        assert!(
            sql.contains(r#""public"."projects"."ctid" = ANY('{}'::tid[])"#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"SELECT "public"."projects"."ctid"::text FROM"#),
            "{sql}"
        );
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
