//! The attacks of `shared/reference/isolation-checklist.md`, run against one tenant table as
//! the app login: tenant A's context attacks tenant B's seeded row.

use sea_orm::{DatabaseConnection, DbErr};
use uuid::Uuid;

use super::catalog::{Table, quote};
use super::outcome::{ContextMode, Outcome, attempt, attempt_after};
use super::report::Cell;
use super::seed::{Seeded, insert_sql, key_predicate};

/// The attack columns of the matrix, in order.
pub const ATTACKS: [&str; 13] = [
    "read_all",
    "read_by_key",
    "insert_other",
    "update_other",
    "move_row",
    "delete_other",
    "truncate",
    "copy_to",
    "no_context",
    "write_no_ctx",
    "emptied_ctx",
    "fk_other",
    "index_cond",
];

/// Everything one table's attacks need.
pub struct Target<'a> {
    /// A pool of exactly one app connection (so reuse is observable).
    pub app: &'a DatabaseConnection,
    /// The app login's URL (COPY needs its own connection).
    pub app_url: &'a str,
    /// How the context is set.
    pub mode: ContextMode,
    /// The seeded rows.
    pub seeded: &'a Seeded,
    /// The registry table and its key (for composite references).
    pub registry: Option<(&'a str, &'a str)>,
    /// Every table (to find the parents of references).
    pub tables: &'a [Table],
    /// What "no context" runs first (`None`: nothing): for a dedicated tenant's tables
    /// `SET LOCAL ROLE t_a` with no tenant id, so the no-context cells test row level
    /// security, not the schema's privileges.
    pub no_context: Option<String>,
}

/// `sql` in a transaction of `t` without a tenant context (see [`Target::no_context`]).
async fn without_context(t: &Target<'_>, sql: &str, query: bool) -> Result<Outcome, DbErr> {
    attempt_after(t.app, t.no_context.as_deref(), sql, query).await
}

/// The seeding INSERT without its `RETURNING`: a RETURNING clause makes PostgreSQL apply the
/// SELECT policy to the new row too, which would hide a missing or weak WITH CHECK.
pub(crate) fn without_returning(insert: &str) -> &str {
    insert.split(" RETURNING ").next().unwrap_or(insert)
}

pub(crate) fn zero_rows(outcome: &Outcome) -> Cell {
    match outcome {
        Outcome::Rows(rows) => {
            let n: i64 = rows
                .first()
                .and_then(|r| r.try_get_by_index(0).ok())
                .unwrap_or(0);
            if n == 0 {
                Cell::pass("0 rows")
            } else {
                Cell::fail(format!("{n} row(s) of another tenant visible"))
            }
        }
        Outcome::Affected(0) => Cell::pass("0 rows affected"),
        Outcome::Affected(n) => Cell::fail(format!("{n} row(s) of another tenant changed")),
        refused if refused.refused_by_security() => Cell::pass("refused (42501)"),
        other => Cell::fail(format!("unexpected: {}", other.describe())),
    }
}

pub(crate) fn must_be_refused(outcome: &Outcome) -> Cell {
    match outcome {
        refused if refused.refused_by_security() => Cell::pass("refused (42501)"),
        Outcome::Affected(0) => Cell::pass("0 rows affected"),
        Outcome::Refused { code, .. } => Cell::fail(format!(
            "blocked only by {} (not by row level security)",
            code.as_deref().unwrap_or("an error")
        )),
        other => Cell::fail(format!("succeeded: {}", other.describe())),
    }
}

/// The column an attacking `UPDATE` sets to itself: the first that is neither key nor tenant.
pub(crate) fn set_column(table: &Table) -> &str {
    table
        .columns
        .iter()
        .find(|c| !table.primary_key.contains(&c.name) && c.name != "tenant_id")
        .map_or("tenant_id", |c| c.name.as_str())
}

/// Runs every attack on `table` (a tenant table).
pub async fn attack_table(
    t: &Target<'_>,
    table: &Table,
) -> Result<Vec<(&'static str, Cell)>, DbErr> {
    let (a, b) = (t.seeded.tenant_a, t.seeded.tenant_b);
    let (Some(row_a), Some(row_b)) = (t.seeded.row(table, a), t.seeded.row(table, b)) else {
        return Ok(ATTACKS
            .iter()
            .map(|n| (*n, Cell::fail("could not seed this table")))
            .collect());
    };
    let name = &table.sql_name;
    let mut cells = Vec::new();

    let all = attempt(
        t.app,
        Some(a),
        t.mode,
        &format!(
            "SELECT count(*) FILTER (WHERE tenant_id IS DISTINCT FROM '{a}'), count(*) FROM {name}"
        ),
        true,
    )
    .await?;
    cells.push(("read_all", zero_rows(&all)));

    let by_key = attempt(
        t.app,
        Some(a),
        t.mode,
        &format!(
            "SELECT count(*) FROM {name} WHERE {}",
            key_predicate(table, row_b)
        ),
        true,
    )
    .await?;
    cells.push(("read_by_key", zero_rows(&by_key)));

    let insert = insert_sql(table, b, t.registry, &t.seeded.rows, &|_| b);
    let insert = attempt(t.app, Some(a), t.mode, without_returning(&insert), false).await?;
    cells.push(("insert_other", must_be_refused(&insert)));

    let set_col = set_column(table);
    let update = attempt(
        t.app,
        Some(a),
        t.mode,
        &format!(
            "UPDATE {name} SET {c} = {c} WHERE {}",
            key_predicate(table, row_b),
            c = quote(set_col)
        ),
        false,
    )
    .await?;
    cells.push(("update_other", zero_rows(&update)));

    let moved = attempt(
        t.app,
        Some(a),
        t.mode,
        &format!(
            "UPDATE {name} SET tenant_id = '{b}' WHERE {}",
            key_predicate(table, row_a)
        ),
        false,
    )
    .await?;
    cells.push(("move_row", must_be_refused(&moved)));

    let delete = attempt(
        t.app,
        Some(a),
        t.mode,
        &format!("DELETE FROM {name} WHERE {}", key_predicate(table, row_b)),
        false,
    )
    .await?;
    cells.push(("delete_other", zero_rows(&delete)));

    let truncate = attempt(t.app, Some(a), t.mode, &format!("TRUNCATE {name}"), false).await?;
    cells.push((
        "truncate",
        if truncate.refused_by_security() {
            Cell::pass("permission denied")
        } else {
            Cell::fail(format!(
                "TRUNCATE ignores row level security: {}",
                truncate.describe()
            ))
        },
    ));

    cells.push(("copy_to", copy_to(t, table, a).await));

    let none = without_context(t, &format!("SELECT count(*) FROM {name}"), true).await?;
    cells.push(("no_context", zero_rows(&none)));

    cells.push(("write_no_ctx", write_without_context(t, table).await?));
    cells.push(("emptied_ctx", emptied_context(t, table).await?));
    cells.push(("fk_other", fk_other(t, table).await?));
    cells.push(("index_cond", index_cond(t, table).await?));
    Ok(cells)
}

/// With no context, inserting (a row for tenant A), updating and deleting (every row) must all
/// be refused or touch nothing.
async fn write_without_context(t: &Target<'_>, table: &Table) -> Result<Cell, DbErr> {
    let a = t.seeded.tenant_a;
    let insert = insert_sql(table, a, t.registry, &t.seeded.rows, &|_| a);
    let outcome = without_context(t, without_returning(&insert), false).await?;
    if !outcome.refused_by_security() {
        return Ok(Cell::fail(format!(
            "insert without a context: {}",
            outcome.describe()
        )));
    }
    let name = &table.sql_name;
    let set_col = quote(set_column(table));
    for sql in [
        format!("UPDATE {name} SET {set_col} = {set_col}"),
        format!("DELETE FROM {name}"),
    ] {
        let outcome = without_context(t, &sql, false).await?;
        if let Cell::Fail(why) = zero_rows(&outcome) {
            return Ok(Cell::fail(format!(
                "without a context, `{}`: {why}",
                &sql[..6]
            )));
        }
    }
    Ok(Cell::pass("insert refused, update/delete touched nothing"))
}

/// A transaction that set tenant A commits; the next transaction on the same pooled
/// connection sets nothing and must see nothing.
async fn emptied_context(t: &Target<'_>, table: &Table) -> Result<Cell, DbErr> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = t.app.begin().await?;
    txn.execute_unprepared(&t.mode.set_sql(t.seeded.tenant_a))
        .await?;
    txn.commit().await?;
    // The pool holds one connection, so this transaction runs where the last one did.
    let after =
        without_context(t, &format!("SELECT count(*) FROM {}", table.sql_name), true).await?;
    Ok(zero_rows(&after))
}

/// Insert a row of tenant A whose reference to another tenant table points at tenant B's row.
async fn fk_other(t: &Target<'_>, table: &Table) -> Result<Cell, DbErr> {
    let parents: Vec<_> = table
        .foreign_keys
        .iter()
        .filter(|fk| fk.columns != ["tenant_id"])
        .filter(|fk| {
            t.tables
                .iter()
                .any(|p| p.sql_name == fk.parent && p.tenant_scoped)
        })
        .collect();
    if parents.is_empty() {
        return Ok(Cell::NotApplicable);
    }
    let (a, b) = (t.seeded.tenant_a, t.seeded.tenant_b);
    for fk in parents {
        let fk_name = fk.name.clone();
        let sql = insert_sql(table, a, t.registry, &t.seeded.rows, &move |n| {
            if n == fk_name { b } else { a }
        });
        let outcome = attempt(t.app, Some(a), t.mode, without_returning(&sql), false).await?;
        match &outcome {
            Outcome::Refused { code: Some(c), .. } if c == "23503" || c == "42501" => {}
            other => {
                return Ok(Cell::fail(format!(
                    "{} accepted a reference to another tenant's row: {}",
                    fk.name,
                    other.describe()
                )));
            }
        }
    }
    Ok(Cell::pass("reference refused (23503)"))
}

/// With sequential scans disabled, the plan of a plain tenant query uses an index condition on
/// `tenant_id` (a VOLATILE or sub-selecting policy would leave only a filter).
async fn index_cond(t: &Target<'_>, table: &Table) -> Result<Cell, DbErr> {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let txn = t.app.begin().await?;
    txn.execute_unprepared(&format!(
        "{}; SET LOCAL enable_seqscan = off",
        t.mode.set_sql(t.seeded.tenant_a)
    ))
    .await?;
    let plan = txn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("EXPLAIN SELECT * FROM {}", table.sql_name),
        ))
        .await;
    txn.rollback().await?;
    let lines: Vec<String> = match plan {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| r.try_get_by_index::<String>(0).ok())
            .collect(),
        Err(e) => return Ok(Cell::fail(format!("EXPLAIN failed: {e}"))),
    };
    if lines.iter().any(|l| {
        (l.contains("Index Cond") || l.contains("Recheck Cond")) && l.contains("tenant_id")
    }) {
        Ok(Cell::pass("index condition on tenant_id"))
    } else {
        Ok(Cell::fail(format!(
            "no index condition on tenant_id: {}",
            lines.join(" / ")
        )))
    }
}

/// `COPY table (tenant_id) TO STDOUT` under tenant A returns only A's rows (or is refused).
pub(crate) async fn copy_to(t: &Target<'_>, table: &Table, a: Uuid) -> Cell {
    match copy_tenant_ids(t.app_url, t.mode, a, &table.sql_name).await {
        Ok(ids) if ids.iter().all(|id| id == &a.to_string()) => {
            Cell::pass(format!("{} row(s), all own", ids.len()))
        }
        Ok(ids) => Cell::fail(format!(
            "COPY returned {} row(s) of other tenants",
            ids.iter().filter(|id| **id != a.to_string()).count()
        )),
        Err(e) if e.contains("42501") || e.contains("permission denied") => {
            Cell::pass("permission denied")
        }
        Err(e) => Cell::fail(format!("COPY failed: {e}")),
    }
}

async fn copy_tenant_ids(
    url: &str,
    mode: ContextMode,
    tenant: Uuid,
    table: &str,
) -> Result<Vec<String>, String> {
    use futures_util::StreamExt;
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "BEGIN; {}",
        mode.set_sql(tenant)
    ))))
    .await
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    {
        let mut stream = conn
            .copy_out_raw(&format!("COPY {table} (tenant_id) TO STDOUT"))
            .await
            .map_err(|e| {
                format!(
                    "{} {e}",
                    e.as_database_error()
                        .and_then(|d| d.code())
                        .unwrap_or_default()
                )
            })?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            out.extend(String::from_utf8_lossy(&chunk).lines().map(str::to_owned));
        }
    }
    let _ = conn.execute(sqlx::raw_sql("ROLLBACK")).await;
    let _ = conn.close().await;
    Ok(out)
}
