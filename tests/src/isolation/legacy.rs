//! The legacy login's attacks: a login in `tenantry_legacy` (the unchanged single-tenant
//! application) is pinned to the default tenant whatever it sends. With `tenantry.tenant_id`
//! set to tenant B, and to tenant A, it reads, updates, deletes and inserts tenant B's rows
//! exactly as unsuccessfully as the app does from tenant A; a row it inserts without naming
//! `tenant_id` lands in the default tenant.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use uuid::Uuid;

use super::attacks::{must_be_refused, set_column, without_returning, zero_rows};
use super::catalog::{Table, dependency_order, quote};
use super::outcome::{ContextMode, attempt, first_line};
use super::report::Cell;
use super::seed::{Seeded, insert_sql, insert_sql_without_tenant, key_predicate};

/// The legacy columns of the matrix, in order.
pub const LEGACY_ATTACKS: [&str; 5] = [
    "read_other",
    "update_other",
    "delete_other",
    "insert_other",
    "insert_default",
];

/// The default tenant (every legacy row's).
pub fn default_tenant() -> Uuid {
    Uuid::parse_str(migration::names::DEFAULT_TENANT_ID).unwrap_or_default()
}

/// Runs every legacy attack on `table` (a tenant table) as `legacy` (one connection).
pub async fn attack_table(
    legacy: &DatabaseConnection,
    seeded: &Seeded,
    tables: &[Table],
    registry: Option<(&str, &str)>,
    table: &Table,
) -> Result<Vec<(&'static str, Cell)>, DbErr> {
    let (a, b) = (seeded.tenant_a, seeded.tenant_b);
    let Some(row_b) = seeded.row(table, b) else {
        return Ok(LEGACY_ATTACKS
            .iter()
            .map(|n| (*n, Cell::fail("could not seed this table")))
            .collect());
    };
    let name = &table.sql_name;
    let key = key_predicate(table, row_b);
    let set_col = quote(set_column(table));
    let local = ContextMode::Local;
    let mut cells = Vec::new();
    // Each attack under B's own id (what an attacker would send) and under A's.
    let statements: [(&'static str, String, bool); 3] = [
        (
            "read_other",
            format!(
                "SELECT count(*) FILTER (WHERE tenant_id IS DISTINCT FROM '{}') FROM {name}",
                default_tenant()
            ),
            true,
        ),
        (
            "update_other",
            format!("UPDATE {name} SET {set_col} = {set_col} WHERE {key}"),
            false,
        ),
        (
            "delete_other",
            format!("DELETE FROM {name} WHERE {key}"),
            false,
        ),
    ];
    for (attack, sql, query) in statements {
        let mut cell = Cell::pass("");
        for setting in [b, a] {
            let c = zero_rows(&attempt(legacy, Some(setting), local, &sql, query).await?);
            if c.failed() {
                cell = c;
                break;
            }
            cell = c;
        }
        cells.push((attack, cell));
    }
    let insert = insert_sql(table, b, registry, &seeded.rows, &|_| b);
    let mut cell = Cell::pass("");
    for setting in [b, a] {
        cell = must_be_refused(
            &attempt(
                legacy,
                Some(setting),
                local,
                without_returning(&insert),
                false,
            )
            .await?,
        );
        if cell.failed() {
            break;
        }
    }
    cells.push(("insert_other", cell));
    cells.push((
        "insert_default",
        insert_default(legacy, seeded, tables, table).await?,
    ));
    Ok(cells)
}

/// With tenant B's id set, the legacy login inserts a row (and first its parents) without
/// naming `tenant_id`: each must succeed and land in the default tenant. Rolled back.
async fn insert_default(
    legacy: &DatabaseConnection,
    seeded: &Seeded,
    tables: &[Table],
    table: &Table,
) -> Result<Cell, DbErr> {
    if !can_insert(legacy, table).await? {
        return Ok(Cell::NotApplicable);
    }
    let default = default_tenant();
    // Global parents (users) are shared: the seeded ones serve. Tenant parents are inserted
    // by the legacy login itself, in the same transaction.
    let mut rows: HashMap<(String, Uuid), serde_json::Value> = seeded
        .rows
        .iter()
        .filter(|((t, tenant), _)| {
            *tenant == seeded.tenant_a
                && tables.iter().any(|x| &x.sql_name == t && !x.tenant_scoped)
        })
        .map(|((t, _), v)| ((t.clone(), default), v.clone()))
        .collect();
    let chain: Vec<&Table> = dependency_order(tables)
        .into_iter()
        .filter(|t| {
            t.tenant_scoped && (t.sql_name == table.sql_name || is_ancestor(tables, t, table))
        })
        .collect();
    let txn = legacy.begin().await?;
    txn.execute_unprepared(&ContextMode::Local.set_sql(seeded.tenant_b))
        .await?;
    let mut verdict = Cell::fail("nothing inserted");
    for t in chain {
        let sql = insert_sql_without_tenant(t, default, &rows);
        let outcome: Result<serde_json::Value, String> = match txn
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
        {
            Ok(Some(row)) => {
                let text: String = row.try_get_by_index(0)?;
                Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
            }
            Ok(None) => Err(format!("{}: no row returned", t.name)),
            Err(e) => Err(format!(
                "{} refused: {}",
                t.name,
                first_line(&e.to_string())
            )),
        };
        match outcome {
            Ok(json) => {
                let tenant = json["tenant_id"].as_str().unwrap_or_default().to_owned();
                rows.insert((t.sql_name.clone(), default), json);
                verdict = if tenant == default.to_string() {
                    Cell::pass("landed in the default tenant")
                } else {
                    Cell::fail(format!("{} row landed in tenant {tenant}", t.name))
                };
                if verdict.failed() {
                    break;
                }
            }
            Err(why) => {
                verdict = Cell::fail(why);
                break;
            }
        }
    }
    txn.rollback().await?;
    Ok(verdict)
}

async fn can_insert(legacy: &DatabaseConnection, table: &Table) -> Result<bool, DbErr> {
    let row = legacy
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT has_table_privilege($1::regclass, 'INSERT')",
            [table.sql_name.clone().into()],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// Whether `candidate` is a (transitive) parent of `table` among tenant tables.
fn is_ancestor(tables: &[Table], candidate: &Table, table: &Table) -> bool {
    let mut frontier = vec![table.sql_name.clone()];
    let mut seen = Vec::new();
    while let Some(name) = frontier.pop() {
        let Some(t) = tables.iter().find(|t| t.sql_name == name) else {
            continue;
        };
        for fk in &t.foreign_keys {
            if fk.parent == candidate.sql_name && fk.parent != table.sql_name {
                return true;
            }
            if fk.parent != name && !seen.contains(&fk.parent) {
                seen.push(fk.parent.clone());
                frontier.push(fk.parent.clone());
            }
        }
    }
    false
}
