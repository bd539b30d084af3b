//! Seeding two tenants with a row in every tenant table, values generated from column types
//! and foreign keys satisfied in dependency order. Runs as the bootstrap superuser.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionTrait};
use uuid::Uuid;

use super::catalog::{Table, dependency_order, quote};

/// The rows seeded for each tenant.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The attacker's tenant.
    pub tenant_a: Uuid,
    /// The victim's tenant.
    pub tenant_b: Uuid,
    /// `(table sql name, tenant)` → the seeded row as JSON.
    pub rows: HashMap<(String, Uuid), serde_json::Value>,
    /// Tables that could not be seeded, with the reason.
    pub failures: Vec<(String, String)>,
}

impl Seeded {
    /// The row seeded in `table` for `tenant`.
    pub fn row(&self, table: &Table, tenant: Uuid) -> Option<&serde_json::Value> {
        self.rows.get(&(table.sql_name.clone(), tenant))
    }
}

/// A SQL literal for a JSON value of a column of type `sql_type`.
pub fn literal(value: &serde_json::Value, sql_type: &str) -> String {
    let text = match value {
        serde_json::Value::Null => return "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("'{}'::{sql_type}", text.replace('\'', "''"))
}

/// `WHERE` predicate selecting `row` by the table's primary key.
pub fn key_predicate(table: &Table, row: &serde_json::Value) -> String {
    let cols: Vec<&String> = if table.primary_key.is_empty() {
        table.columns.iter().map(|c| &c.name).collect()
    } else {
        table.primary_key.iter().collect()
    };
    cols.iter()
        .filter_map(|c| table.column(c))
        .map(|c| {
            format!(
                "{} = {}",
                quote(&c.name),
                literal(&row[&c.name], &c.sql_type)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn generated(sql_type: &str, allowed: Option<&str>) -> String {
    if let Some(v) = allowed {
        return format!("'{}'::{sql_type}", v.replace('\'', "''"));
    }
    let hex = Uuid::new_v4().simple().to_string();
    let t = sql_type;
    if t.ends_with("[]") {
        "'{}'".into()
    } else if t == "uuid" {
        "gen_random_uuid()".into()
    } else if t.starts_with("text") || t.starts_with("character") || t == "citext" || t == "name" {
        format!("'s{}'", &hex[..15])
    } else if [
        "integer",
        "bigint",
        "smallint",
        "numeric",
        "real",
        "double precision",
    ]
    .iter()
    .any(|n| t.starts_with(n))
    {
        "1".into()
    } else if t == "boolean" {
        "false".into()
    } else if t.starts_with("timestamp") || t == "date" || t.starts_with("time") {
        "now()".into()
    } else if t == "jsonb" || t == "json" {
        "'{}'".into()
    } else if t == "bytea" {
        format!("decode('{hex}{hex}', 'hex')")
    } else {
        "NULL".into()
    }
}

/// The INSERT of one row of `table` for `tenant`, its references taken from `rows`; `victim`
/// overrides the parents of the listed foreign keys with the victim tenant's rows.
pub fn insert_sql(
    table: &Table,
    tenant: Uuid,
    registry: Option<(&str, &str)>,
    rows: &HashMap<(String, Uuid), serde_json::Value>,
    parent_tenant: &dyn Fn(&str) -> Uuid,
) -> String {
    insert_sql_with(table, Some(tenant), registry, rows, parent_tenant)
}

/// Like [`insert_sql`] for `tenant`'s parents, but the row does not name `tenant_id`: the
/// column default decides (what the unchanged legacy application sends).
pub fn insert_sql_without_tenant(
    table: &Table,
    tenant: Uuid,
    rows: &HashMap<(String, Uuid), serde_json::Value>,
) -> String {
    insert_sql_with(table, None, None, rows, &|_| tenant)
}

fn insert_sql_with(
    table: &Table,
    tenant: Option<Uuid>,
    registry: Option<(&str, &str)>,
    rows: &HashMap<(String, Uuid), serde_json::Value>,
    parent_tenant: &dyn Fn(&str) -> Uuid,
) -> String {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for col in &table.columns {
        let from_fk = table.foreign_keys.iter().find_map(|fk| {
            let i = fk.columns.iter().position(|c| c == &col.name)?;
            let parent_row = rows.get(&(fk.parent.clone(), parent_tenant(&fk.name)))?;
            Some(literal(&parent_row[&fk.parent_columns[i]], &col.sql_type))
        });
        let is_tenant_column = col.name == "tenant_id" && table.tenant_scoped;
        let is_registry_key = registry.is_some_and(|(t, c)| t == table.sql_name && c == col.name);
        let value = if is_tenant_column || is_registry_key {
            tenant.map(|t| format!("'{t}'::uuid"))
        } else if let Some(v) = from_fk {
            Some(v)
        } else if col.has_default || !col.not_null {
            None
        } else {
            Some(generated(&col.sql_type, col.allowed.as_deref()))
        };
        if let Some(v) = value {
            names.push(quote(&col.name));
            values.push(v);
        }
    }
    format!(
        "INSERT INTO {} AS t ({}) VALUES ({}) RETURNING to_jsonb(t.*)::text",
        table.sql_name,
        names.join(", "),
        values.join(", ")
    )
}

/// The table every `tenant_id` references (normally `tenancy.tenants`) and its key column.
pub fn registry(tables: &[Table]) -> Option<(String, String)> {
    tables.iter().filter(|t| t.tenant_scoped).find_map(|t| {
        t.foreign_keys
            .iter()
            .find(|fk| fk.columns == ["tenant_id"])
            .map(|fk| (fk.parent.clone(), fk.parent_columns[0].clone()))
    })
}

/// Seeds tenants A and B: the registry row, every global table tenant tables reference, and
/// every tenant table, each in dependency order, in one transaction of the superuser.
pub async fn seed(
    superuser: &sea_orm::DatabaseConnection,
    tables: &[Table],
) -> Result<Seeded, DbErr> {
    let tenant_a = Uuid::new_v4();
    let tenant_b = Uuid::new_v4();
    let registry = registry(tables);
    let needed = needed_tables(tables, registry.as_ref().map(|r| r.0.as_str()));
    let order: Vec<&Table> = dependency_order(tables)
        .into_iter()
        .filter(|t| needed.contains(&t.sql_name))
        .collect();
    let registry = registry.as_ref().map(|(t, c)| (t.as_str(), c.as_str()));
    let (rows, failures) = seed_tables(superuser, &order, &[tenant_a, tenant_b], registry).await?;
    Ok(Seeded {
        tenant_a,
        tenant_b,
        rows,
        failures,
    })
}

/// The rows seeded, by `(table, tenant)`, and the tables that could not be seeded.
type SeededRows = (
    HashMap<(String, Uuid), serde_json::Value>,
    Vec<(String, String)>,
);

/// Seeds one row per tenant in each of `order` (parents first, references taken from the rows
/// seeded before) in one transaction of the superuser; a table that cannot be seeded is
/// recorded and skipped.
async fn seed_tables(
    superuser: &sea_orm::DatabaseConnection,
    order: &[&Table],
    tenants: &[Uuid],
    registry: Option<(&str, &str)>,
) -> Result<SeededRows, DbErr> {
    let mut rows = HashMap::new();
    let mut failures = Vec::new();
    let txn = superuser.begin().await?;
    for table in order {
        for &tenant in tenants {
            let sql = insert_sql(table, tenant, registry, &rows, &|_| tenant);
            txn.execute_unprepared("SAVEPOINT seed").await?;
            match txn
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
            {
                Ok(Some(row)) => {
                    let text: String = row.try_get_by_index(0)?;
                    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                    rows.insert((table.sql_name.clone(), tenant), json);
                    txn.execute_unprepared("RELEASE SAVEPOINT seed").await?;
                }
                Ok(None) => {
                    txn.execute_unprepared("ROLLBACK TO SAVEPOINT seed").await?;
                }
                Err(e) => {
                    txn.execute_unprepared("ROLLBACK TO SAVEPOINT seed").await?;
                    failures.push((table.name.clone(), e.to_string()));
                    break;
                }
            }
        }
    }
    txn.commit().await?;
    Ok((rows, failures))
}

/// Seeds one row of `tenant` in every table of one dedicated tenant's schema (`tables`, all
/// of that schema), parents first, in one transaction of the superuser. Its rows are keyed by
/// `(table, tenant)` like [`seed`]'s.
pub async fn seed_schema(
    superuser: &sea_orm::DatabaseConnection,
    tables: &[Table],
    tenant: Uuid,
) -> Result<Seeded, DbErr> {
    let (rows, failures) =
        seed_tables(superuser, &dependency_order(tables), &[tenant], None).await?;
    Ok(Seeded {
        tenant_a: tenant,
        tenant_b: tenant,
        rows,
        failures,
    })
}

/// Tenant tables, the registry, and every table they reference, transitively.
fn needed_tables(tables: &[Table], registry: Option<&str>) -> Vec<String> {
    let mut needed: Vec<String> = tables
        .iter()
        .filter(|t| t.tenant_scoped)
        .map(|t| t.sql_name.clone())
        .collect();
    if let Some(r) = registry {
        needed.push(r.to_owned());
    }
    loop {
        let mut added = false;
        let parents: Vec<String> = tables
            .iter()
            .filter(|t| needed.contains(&t.sql_name))
            .flat_map(|t| t.foreign_keys.iter().map(|fk| fk.parent.clone()))
            .collect();
        for parent in parents {
            if !needed.contains(&parent) {
                needed.push(parent);
                added = true;
            }
        }
        if !added {
            return needed;
        }
    }
}
