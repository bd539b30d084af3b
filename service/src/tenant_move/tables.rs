//! The tables a move carries, read from the catalog, and the statements it runs on them.
//!
//! A moved table exists in both places (`public.x` and `t_<hex>.x`) with the same columns
//! and types and a primary key `(tenant_id, k)`. Every statement is rendered from catalog
//! names (quoted) and binds the tenant id; no value is ever formatted into SQL.

use std::collections::{BTreeMap, BTreeSet};

use migration::ddl::qualified;
use migration::names::APP_SCHEMA;
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::error::{Result, ServiceError};

/// A foreign key of a moved table to another moved table.
#[derive(Debug, Clone)]
pub(crate) struct ParentRef {
    table: String,
    /// (column of the child, column of the parent)
    pairs: Vec<(String, String)>,
}

/// One table of the tenant, in both places.
#[derive(Debug, Clone)]
pub(crate) struct MovedTable {
    /// Its name (the same in both schemas).
    pub(crate) name: String,
    columns: Vec<String>,
    /// Each column's type (`format_type`), in the order of `columns`.
    types: Vec<String>,
    key: String,
    key_type: String,
    parents: Vec<ParentRef>,
}

/// Where rows come from and go to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Direction<'a> {
    pub(crate) from: &'a str,
    pub(crate) to: &'a str,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn list(prefix: &str, columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(FromQueryResult)]
struct ColumnRow {
    schema: String,
    table_name: String,
    column_name: String,
    type_name: String,
}

#[derive(FromQueryResult)]
struct KeyRow {
    table_name: String,
    key_columns: Vec<String>,
}

#[derive(FromQueryResult)]
struct ForeignKeyRow {
    child: String,
    parent: String,
    child_columns: Vec<String>,
    parent_columns: Vec<String>,
}

/// Key types a batch cursor may be cast back to (from `format_type`).
const KEY_TYPES: [&str; 5] = [
    "uuid",
    "bigint",
    "integer",
    "text",
    "timestamp with time zone",
];

/// The tables of `schema` that also exist in `public`, parents first, and the tables only
/// `schema` has. Differing columns or a key other than `(tenant_id, k)` are refused.
pub(crate) async fn discover<C: ConnectionTrait>(
    conn: &C,
    schema: &str,
) -> Result<(Vec<MovedTable>, Vec<String>)> {
    let columns = ColumnRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT n.nspname::text AS schema, c.relname::text AS table_name, \
                a.attname::text AS column_name, \
                pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 \
           AND NOT a.attisdropped \
         WHERE n.nspname IN ($1, $2) AND c.relkind IN ('r', 'p') \
         ORDER BY n.nspname, c.relname, a.attnum",
        [Value::from(schema), Value::from(APP_SCHEMA)],
    ))
    .all(conn)
    .await?;
    let mut by_table: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for c in columns {
        by_table
            .entry((c.schema, c.table_name))
            .or_default()
            .push((c.column_name, c.type_name));
    }
    let keys: BTreeMap<String, Vec<String>> =
        KeyRow::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.relname::text AS table_name, \
                    array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY u(n, o) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.n \
                      ORDER BY u.o) AS key_columns \
             FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indisprimary AND n.nspname = $1",
            [Value::from(schema)],
        ))
        .all(conn)
        .await?
        .into_iter()
        .map(|k| (k.table_name, k.key_columns))
        .collect();
    let fks = ForeignKeyRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT c.relname::text AS child, p.relname::text AS parent, \
                array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o) \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n \
                  ORDER BY u.o) AS child_columns, \
                array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, o) \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n \
                  ORDER BY u.o) AS parent_columns \
         FROM pg_catalog.pg_constraint k \
         JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
         JOIN pg_catalog.pg_class p ON p.oid = k.confrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = $1 AND p.relnamespace = c.relnamespace",
        [Value::from(schema)],
    ))
    .all(conn)
    .await?;

    let mut moved = Vec::new();
    let mut only_schema = Vec::new();
    for ((owner, table), cols) in &by_table {
        if owner != schema {
            continue;
        }
        let Some(shared) = by_table.get(&(APP_SCHEMA.to_owned(), table.clone())) else {
            only_schema.push(table.clone());
            continue;
        };
        let mine: BTreeSet<_> = cols.iter().collect();
        let theirs: BTreeSet<_> = shared.iter().collect();
        if mine != theirs {
            return Err(ServiceError::Conflict(format!(
                "table {table} has different columns in {APP_SCHEMA} and in the tenant's \
                 schema (run the migrations first); nothing changed"
            )));
        }
        let key = keys.get(table).cloned().unwrap_or_default();
        let (key, key_type) = match key.as_slice() {
            [tenant, k] if tenant == "tenant_id" => {
                let ty = cols
                    .iter()
                    .find(|(c, _)| c == k)
                    .map(|(_, t)| t.clone())
                    .unwrap_or_default();
                (k.clone(), ty)
            }
            _ => {
                return Err(ServiceError::Conflict(format!(
                    "table {table} has no primary key (tenant_id, k); it cannot be moved"
                )));
            }
        };
        if !KEY_TYPES.contains(&key_type.as_str()) {
            return Err(ServiceError::Conflict(format!(
                "table {table}'s key is of type {key_type}, which a move cannot page through"
            )));
        }
        moved.push(MovedTable {
            name: table.clone(),
            columns: cols.iter().map(|(c, _)| c.clone()).collect(),
            types: cols.iter().map(|(_, t)| t.clone()).collect(),
            key,
            key_type,
            parents: Vec::new(),
        });
    }
    let names: BTreeSet<String> = moved.iter().map(|t| t.name.clone()).collect();
    for fk in fks {
        if fk.child == fk.parent || !names.contains(&fk.parent) {
            continue;
        }
        if let Some(t) = moved.iter_mut().find(|t| t.name == fk.child) {
            t.parents.push(ParentRef {
                table: fk.parent,
                pairs: fk
                    .child_columns
                    .into_iter()
                    .zip(fk.parent_columns)
                    .collect(),
            });
        }
    }
    Ok((parents_first(moved), only_schema))
}

fn parents_first(mut pending: Vec<MovedTable>) -> Vec<MovedTable> {
    let mut placed: Vec<MovedTable> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.parents
                .iter()
                .all(|p| placed.iter().any(|d| d.name == p.table))
        });
        // A cycle (none among ours) keeps catalog order: the switch's delta still converges.
        placed.push(pending.remove(ready.unwrap_or(0)));
    }
    placed
}

/// Counts read back from one statement.
#[derive(Debug, FromQueryResult)]
pub(crate) struct BatchCounts {
    /// Source rows in the window.
    pub(crate) window_rows: i64,
    /// The window's last key, as text (the next batch's cursor).
    pub(crate) last_key: Option<String>,
    /// Rows written.
    pub(crate) written: i64,
}

/// Types whose default hash function `hash_record_extended` may use; a column of any other
/// type is hashed by its text.
const HASHABLE: [&str; 16] = [
    "uuid",
    "text",
    "bigint",
    "integer",
    "smallint",
    "boolean",
    "numeric",
    "date",
    "timestamp with time zone",
    "timestamp without time zone",
    "jsonb",
    "bytea",
    "citext",
    "character varying",
    "text[]",
    "uuid[]",
];

impl MovedTable {
    /// A 64-bit hash of the row `alias` (every column, in one fixed order).
    fn row_hash(&self, alias: &str) -> String {
        let fields: Vec<String> = self
            .columns
            .iter()
            .zip(&self.types)
            .map(|(c, t)| {
                if HASHABLE.contains(&t.as_str()) {
                    format!("{alias}.{}", quote(c))
                } else {
                    format!("{alias}.{}::text", quote(c))
                }
            })
            .collect();
        format!(
            "pg_catalog.hash_record_extended(ROW({}), 0)",
            fields.join(", ")
        )
    }

    fn parents_exist(&self, alias: &str, dir: Direction<'_>) -> String {
        self.parents
            .iter()
            .map(|p| {
                let cond = p
                    .pairs
                    .iter()
                    .map(|(c, pc)| format!("p.{} = {alias}.{}", quote(pc), quote(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    " AND EXISTS (SELECT FROM {} p WHERE {cond})",
                    qualified(dir.to, &p.table)
                )
            })
            .collect()
    }

    /// The next copy batch: the `limit` source rows after `cursor` in key order, inserted
    /// into the destination where their parents are already there (the switch brings the
    /// others). `$1` is the tenant, `$2` the cursor.
    pub(crate) fn copy_batch(&self, dir: Direction<'_>, after_cursor: bool, limit: u32) -> String {
        let key = quote(&self.key);
        let cursor = if after_cursor {
            format!(" AND s.{key} > CAST($2 AS {})", self.key_type)
        } else {
            String::new()
        };
        format!(
            "WITH w AS (SELECT {cols} FROM {src} s WHERE s.tenant_id = $1{cursor} \
               ORDER BY s.{key} LIMIT {limit}), \
             ins AS (INSERT INTO {dst} ({cols}) SELECT {wcols} FROM w WHERE true{parents} \
               ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT (SELECT count(*) FROM w) AS window_rows, \
                    (SELECT w.{key}::text FROM w ORDER BY w.{key} DESC LIMIT 1) AS last_key, \
                    (SELECT count(*) FROM ins) AS written",
            cols = list("", &self.columns),
            wcols = list("w.", &self.columns),
            src = qualified(dir.from, &self.name),
            dst = qualified(dir.to, &self.name),
            parents = self.parents_exist("w", dir),
        )
    }

    /// The destination's last key of the tenant (where a resumed copy continues).
    pub(crate) fn last_key(&self, dir: Direction<'_>) -> String {
        let key = quote(&self.key);
        format!(
            "SELECT d.{key}::text FROM {} d WHERE d.tenant_id = $1 ORDER BY d.{key} DESC LIMIT 1",
            qualified(dir.to, &self.name)
        )
    }

    /// Deletes the destination's rows of the tenant that the source no longer has.
    pub(crate) fn delta_delete(&self, dir: Direction<'_>) -> String {
        let key = quote(&self.key);
        format!(
            "WITH x AS (DELETE FROM {dst} d WHERE d.tenant_id = $1 AND NOT EXISTS \
               (SELECT FROM {src} s WHERE s.tenant_id = $1 AND s.{key} = d.{key}) RETURNING 1) \
             SELECT count(*) AS n FROM x",
            src = qualified(dir.from, &self.name),
            dst = qualified(dir.to, &self.name),
        )
    }

    /// Inserts the source rows the destination lacks and rewrites those that differ.
    pub(crate) fn delta_upsert(&self, dir: Direction<'_>) -> String {
        let key = quote(&self.key);
        let set = self
            .columns
            .iter()
            .filter(|c| *c != "tenant_id" && **c != self.key)
            .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let action = if set.is_empty() {
            "NOTHING".to_owned()
        } else {
            format!("UPDATE SET {set}")
        };
        format!(
            "WITH x AS (INSERT INTO {dst} ({cols}) SELECT {scols} FROM {src} s \
               LEFT JOIN {dst} d ON d.tenant_id = s.tenant_id AND d.{key} = s.{key} \
               WHERE s.tenant_id = $1 AND (d.{key} IS NULL \
                 OR {shash} <> {dhash}) \
               ON CONFLICT (tenant_id, {key}) DO {action} RETURNING 1) \
             SELECT count(*) AS n FROM x",
            cols = list("", &self.columns),
            scols = list("s.", &self.columns),
            shash = self.row_hash("s"),
            dhash = self.row_hash("d"),
            src = qualified(dir.from, &self.name),
            dst = qualified(dir.to, &self.name),
        )
    }

    /// Row count and checksum (sum of a 64-bit hash of each row, every column) of the
    /// tenant's rows in `schema`.
    pub(crate) fn checksum(&self, schema: &str) -> String {
        format!(
            "SELECT count(*) AS n, coalesce(sum({hash}), 0)::text AS sum \
             FROM {t} x WHERE x.tenant_id = $1",
            hash = self.row_hash("x"),
            t = qualified(schema, &self.name),
        )
    }

    /// Removes up to `limit` of the tenant's rows from `schema` (the old place).
    pub(crate) fn remove_batch(&self, schema: &str, limit: u32) -> String {
        let key = quote(&self.key);
        format!(
            "WITH x AS (DELETE FROM {t} o WHERE o.tenant_id = $1 AND o.{key} IN \
               (SELECT y.{key} FROM {t} y WHERE y.tenant_id = $1 LIMIT {limit}) RETURNING 1) \
             SELECT count(*) AS n FROM x",
            t = qualified(schema, &self.name),
        )
    }
}

/// Runs `sql` with the tenant as `$1` (and `cursor` as `$2`), returning the counts row.
pub(crate) async fn batch<C: ConnectionTrait>(
    conn: &C,
    sql: String,
    tenant: Uuid,
    cursor: Option<String>,
) -> Result<BatchCounts> {
    let mut values = vec![Value::from(tenant)];
    if let Some(c) = cursor {
        values.push(Value::from(c));
    }
    BatchCounts::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .one(conn)
    .await?
    .ok_or_else(|| ServiceError::Unavailable("a move batch returned nothing".into()))
}

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

/// Runs a `... SELECT count(*) AS n` statement with the tenant as `$1`.
pub(crate) async fn count<C: ConnectionTrait>(conn: &C, sql: String, tenant: Uuid) -> Result<u64> {
    count_with(conn, sql, Value::from(tenant)).await
}

/// A table's rows of the tenant in one place: how many, and their checksum.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub(crate) struct Checksum {
    /// Rows.
    pub(crate) n: i64,
    /// Sum of the rows' 64-bit hashes, as text.
    pub(crate) sum: String,
}

/// The tenant's rows of `table` in `schema`.
pub(crate) async fn checksum<C: ConnectionTrait>(
    conn: &C,
    table: &MovedTable,
    schema: &str,
    tenant: Uuid,
) -> Result<Checksum> {
    Checksum::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        table.checksum(schema),
        [Value::from(tenant)],
    ))
    .one(conn)
    .await?
    .ok_or_else(|| ServiceError::Unavailable("a checksum returned nothing".into()))
}

/// Runs a `... SELECT count(*) AS n` statement with `value` as `$1`.
pub(crate) async fn count_with<C: ConnectionTrait>(
    conn: &C,
    sql: String,
    value: Value,
) -> Result<u64> {
    let row = Count::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        [value],
    ))
    .one(conn)
    .await?;
    Ok(row.map(|r| r.n.max(0) as u64).unwrap_or(0))
}

/// Runs a one-text-column query with the tenant as `$1` (`None` for no row or NULL).
pub(crate) async fn text<C: ConnectionTrait>(
    conn: &C,
    sql: String,
    tenant: Uuid,
) -> Result<Option<String>> {
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [Value::from(tenant)],
        ))
        .await?;
    match row {
        Some(r) => Ok(r.try_get_by_index::<Option<String>>(0)?),
        None => Ok(None),
    }
}
