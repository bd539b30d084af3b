//! Batched, resumable backfill of a column on a large table.
//!
//! Each batch is its own short transaction (`UPDATE ... WHERE key IN (next N keys still
//! NULL)`), walking the primary key with a cursor so the whole pass is linear. Killed halfway,
//! the committed batches stay and a rerun simply continues with the rows still NULL. A final
//! sweep from the start catches rows written behind the cursor by concurrent writers.

use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, PostgresQueryBuilder, Query, Value};
use sea_orm::{ConnectionTrait, DbErr};

use crate::plan::pg;

/// Test hook: when non-zero, a backfill fails after this many committed batches, leaving the
/// database exactly as a killed process would (the migration is not recorded as applied).
pub static INTERRUPT_AFTER_BATCHES: AtomicU64 = AtomicU64::new(0);

/// The type of the key the cursor walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// `uuid` keys.
    Uuid,
    /// `bigint` / `bigserial` keys.
    BigInt,
    /// `integer` / `serial` keys.
    Int,
}

/// Where a child row's value comes from in [`Backfill::from_parent`]: the parent row its
/// foreign key points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentValue {
    /// The parent's schema.
    pub schema: String,
    /// The parent table.
    pub table: String,
    /// The parent's column copied into the child (e.g. its `tenant_id`).
    pub value_column: String,
    /// The foreign key: pairs of (child column, parent column).
    pub on: Vec<(String, String)>,
}

/// Sets `column = value` on every row of `schema.table` where it is NULL, in batches.
#[derive(Debug, Clone)]
pub struct Backfill {
    schema: String,
    table: String,
    key: String,
    key_type: KeyType,
    column: String,
    value: Value,
    parent: Option<ParentValue>,
    batch_size: u64,
}

impl Backfill {
    /// A backfill of `column` to `value`, walking the single-column key `key` (uuid).
    pub fn new(schema: &str, table: &str, column: &str, value: impl Into<Value>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            key: "id".into(),
            key_type: KeyType::Uuid,
            column: column.into(),
            value: value.into(),
            parent: None,
            batch_size: batch_size_from_env(),
        }
    }

    /// A backfill of `column` from the parent row each child row references: sets
    /// `child.column = parent.value_column` where `child.column IS NULL`, joined through
    /// `parent.on`. Child rows without a matching parent (or whose parent's value is NULL) are
    /// left NULL. Stand-in implementation (issue 9) of the shared contract; the backfill engine's
    /// owner replaces it.
    pub fn from_parent(schema: &str, table: &str, column: &str, parent: ParentValue) -> Self {
        let mut backfill = Self::new(schema, table, column, Value::Uuid(None));
        backfill.parent = Some(parent);
        backfill
    }

    /// The key column and its type (default `id`, uuid).
    pub fn key(mut self, key: &str, key_type: KeyType) -> Self {
        self.key = key.into();
        self.key_type = key_type;
        self
    }

    /// Rows per batch (default `TENANTRY_BACKFILL_BATCH` or 5,000).
    pub fn batch_size(mut self, rows: u64) -> Self {
        self.batch_size = std::cmp::max(rows, 1);
        self
    }

    fn table_ref(&self) -> (Alias, Alias) {
        (Alias::new(&self.schema), Alias::new(&self.table))
    }

    fn batch_statement(&self, after: Option<&Value>) -> sea_orm::sea_query::UpdateStatement {
        let key = Alias::new(&self.key);
        let child = Alias::new("tenantry_child");
        let mut next = Query::select();
        next.column((child.clone(), key.clone()))
            .from_as(self.table_ref(), child.clone())
            .and_where(Expr::col((child.clone(), Alias::new(&self.column))).is_null())
            .order_by((child.clone(), key.clone()), Order::Asc)
            .limit(self.batch_size);
        if let Some(after) = after {
            next.and_where(Expr::col((child.clone(), key.clone())).gt(after.clone()));
        }
        let mut update = Query::update();
        update.table(self.table_ref());
        match &self.parent {
            None => {
                update.value(Alias::new(&self.column), self.value.clone());
            }
            Some(parent) => {
                let p = Alias::new("tenantry_parent");
                let parent_ref = (Alias::new(&parent.schema), Alias::new(&parent.table));
                // Only rows whose parent has a value: orphans would otherwise stop the walk.
                let mut matches = Query::select();
                matches
                    .expr(Expr::cust("1"))
                    .from_as(parent_ref.clone(), p.clone())
                    .and_where(
                        Expr::col((p.clone(), Alias::new(&parent.value_column))).is_not_null(),
                    );
                let mut value = Query::select();
                value
                    .column((p.clone(), Alias::new(&parent.value_column)))
                    .from_as(parent_ref, p.clone());
                for (c, pc) in &parent.on {
                    matches.and_where(
                        Expr::col((p.clone(), Alias::new(pc)))
                            .equals((child.clone(), Alias::new(c))),
                    );
                    value.and_where(Expr::col((p.clone(), Alias::new(pc))).equals((
                        self.table_ref().0,
                        self.table_ref().1,
                        Alias::new(c),
                    )));
                }
                next.and_where(Expr::exists(matches));
                update.value(
                    Alias::new(&self.column),
                    Expr::SubQuery(
                        None,
                        Box::new(
                            sea_orm::sea_query::QueryStatementBuilder::into_sub_query_statement(
                                value,
                            ),
                        ),
                    ),
                );
            }
        }
        update
            .and_where(Expr::col(key.clone()).in_subquery(next))
            .returning_col(key)
            .to_owned()
    }

    /// What `plan` prints for this step.
    pub fn render(&self) -> Vec<String> {
        vec![
            format!(
                "-- backfill {}.{}.{} in batches of {} (each batch its own transaction; resumable), repeated until no NULL remains:",
                self.schema, self.table, self.column, self.batch_size
            ),
            format!(
                "{};",
                self.batch_statement(None).to_string(PostgresQueryBuilder)
            ),
        ]
    }

    async fn count_remaining<C: ConnectionTrait>(&self, db: &C) -> Result<u64, DbErr> {
        let stmt = Query::select()
            .expr(Expr::col(Alias::new(&self.column)).count())
            .expr(Expr::cust("count(*)"))
            .from(self.table_ref())
            .to_owned();
        let row = db.query_one_raw(pg(&stmt)).await?;
        let (filled, all) = match row {
            Some(r) => (r.try_get_by_index::<i64>(0)?, r.try_get_by_index::<i64>(1)?),
            None => (0, 0),
        };
        Ok(u64::try_from(all - filled).unwrap_or(0))
    }

    /// Runs every batch until no row is left NULL, showing progress on a terminal. While it
    /// runs, its session sets `tenantry.backfill = on` so backfill-aware triggers (our
    /// `set_updated_at`) leave the row's other columns alone.
    pub async fn run<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        db.execute_unprepared("SET tenantry.backfill = 'on'")
            .await?;
        let result = self.run_batches(db).await;
        let reset = db.execute_unprepared("RESET tenantry.backfill").await;
        result?;
        reset.map(|_| ())
    }

    async fn run_batches<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let remaining = self.count_remaining(db).await?;
        let name = format!("{}.{}", self.schema, self.table);
        tracing::info!(table = %name, rows = remaining, "backfilling {}", self.column);
        let bar = ProgressBar::new(remaining);
        if let Ok(style) = ProgressStyle::with_template(
            "  {msg} [{bar:30}] {pos}/{len} rows ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("backfill {name}.{}", self.column));
        let mut batches = 0u64;
        // First pass walks the key with a cursor; the sweep passes restart from the beginning
        // and stop when a whole pass finds nothing left.
        loop {
            let mut cursor: Option<Value> = None;
            let mut touched_in_pass = 0u64;
            loop {
                let rows = db
                    .query_all_raw(pg(&self.batch_statement(cursor.as_ref())))
                    .await?;
                if rows.is_empty() {
                    break;
                }
                touched_in_pass += rows.len() as u64;
                bar.inc(rows.len() as u64);
                cursor = self.max_key(&rows)?;
                batches += 1;
                let stop_after = INTERRUPT_AFTER_BATCHES.load(Ordering::SeqCst);
                if stop_after != 0 && batches >= stop_after {
                    bar.abandon();
                    return Err(DbErr::Migration(format!(
                        "backfill of {name} interrupted after {batches} batches (test hook)"
                    )));
                }
            }
            if touched_in_pass == 0 {
                break;
            }
        }
        bar.finish_and_clear();
        tracing::info!(table = %name, batches, "backfill finished");
        Ok(())
    }

    fn max_key(&self, rows: &[sea_orm::QueryResult]) -> Result<Option<Value>, DbErr> {
        Ok(match self.key_type {
            KeyType::Uuid => {
                let mut keys = Vec::with_capacity(rows.len());
                for r in rows {
                    keys.push(r.try_get_by_index::<uuid::Uuid>(0)?);
                }
                keys.into_iter().max().map(Value::from)
            }
            KeyType::BigInt => {
                let mut keys = Vec::with_capacity(rows.len());
                for r in rows {
                    keys.push(r.try_get_by_index::<i64>(0)?);
                }
                keys.into_iter().max().map(Value::from)
            }
            KeyType::Int => {
                let mut keys = Vec::with_capacity(rows.len());
                for r in rows {
                    keys.push(r.try_get_by_index::<i32>(0)?);
                }
                keys.into_iter().max().map(Value::from)
            }
        })
    }
}

fn batch_size_from_env() -> u64 {
    std::env::var("TENANTRY_BACKFILL_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5_000)
}
