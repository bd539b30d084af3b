//! What the attack matrix learns from the live catalog: tables, columns, keys, references.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// A column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// `format_type` spelling, e.g. `uuid`, `text[]`.
    pub sql_type: String,
    /// NOT NULL.
    pub not_null: bool,
    /// Has a default, identity or generated value.
    pub has_default: bool,
    /// The first literal of a `CHECK (col IN (...))`/`= ANY (ARRAY[...])`, if any.
    pub allowed: Option<String>,
}

/// A foreign key.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table (qualified name).
    pub parent: String,
    /// Referenced columns.
    pub parent_columns: Vec<String>,
}

/// A table of an application schema.
#[derive(Debug, Clone)]
pub struct Table {
    /// `schema.table`, quoted for SQL.
    pub sql_name: String,
    /// `schema.table` for people.
    pub name: String,
    /// Has a `tenant_id` column.
    pub tenant_scoped: bool,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary-key columns.
    pub primary_key: Vec<String>,
    /// Outgoing foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
}

impl Table {
    /// A column by name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Quotes an identifier.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Every table outside PostgreSQL's own schemas and the dedicated tenants' schemas.
pub async fn discover<C: ConnectionTrait>(db: &C) -> Result<Vec<Table>, DbErr> {
    tables_where(
        db,
        Statement::from_string(
            DbBackend::Postgres,
            format!(
                "{TABLES} AND n.nspname NOT IN ('pg_catalog','information_schema') \
                   AND pg_catalog.left(n.nspname, 3) <> 'pg_' AND n.nspname !~ '^t_[0-9a-f]{{32}}$' ORDER BY 1, 2"
            ),
        ),
    )
    .await
}

/// Every table of `schema` (a dedicated tenant's schema, for its leg of the matrix).
pub async fn discover_schema<C: ConnectionTrait>(
    db: &C,
    schema: &str,
) -> Result<Vec<Table>, DbErr> {
    tables_where(
        db,
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("{TABLES} AND n.nspname = $1 ORDER BY 1, 2"),
            [schema.into()],
        ),
    )
    .await
}

/// The tables query, to be completed with a condition on `n.nspname` and the order.
const TABLES: &str = "SELECT n.nspname::text, c.relname::text, c.oid::bigint, \
     quote_ident(n.nspname) || '.' || quote_ident(c.relname) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p')";

async fn tables_where<C: ConnectionTrait>(db: &C, query: Statement) -> Result<Vec<Table>, DbErr> {
    let rows = db.query_all_raw(query).await?;
    let mut tables = Vec::new();
    for row in rows {
        let schema: String = row.try_get_by_index(0)?;
        let name: String = row.try_get_by_index(1)?;
        let oid: i64 = row.try_get_by_index(2)?;
        let sql_name: String = row.try_get_by_index(3)?;
        tables.push(describe(db, &schema, &name, &sql_name, oid).await?);
    }
    Ok(tables)
}

async fn describe<C: ConnectionTrait>(
    db: &C,
    schema: &str,
    name: &str,
    sql_name: &str,
    oid: i64,
) -> Result<Table, DbErr> {
    let cols = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                    a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', \
                    (SELECT substring(pg_get_constraintdef(k.oid) FROM '''([^'']*)''') FROM pg_constraint k \
                      WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND k.conkey = ARRAY[a.attnum] \
                        AND pg_get_constraintdef(k.oid) ~ '(ANY|IN) \\(' LIMIT 1) \
             FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [oid.into()],
        ))
        .await?;
    let mut columns = Vec::new();
    for r in cols {
        columns.push(Column {
            name: r.try_get_by_index(0)?,
            sql_type: r.try_get_by_index(1)?,
            not_null: r.try_get_by_index(2)?,
            has_default: r.try_get_by_index(3)?,
            allowed: r.try_get_by_index(4)?,
        });
    }
    let pk = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT coalesce(array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)), '{}') \
             FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = $1::oid AND i.indisprimary",
            [oid.into()],
        ))
        .await?
        .map(|r| r.try_get_by_index::<Vec<String>>(0))
        .transpose()?
        .unwrap_or_default();
    let fks = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT k.conname::text, \
               (SELECT array_agg(a.attname::text ORDER BY u.i) FROM unnest(k.conkey) WITH ORDINALITY u(n, i) \
                  JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n), \
               quote_ident(pn.nspname) || '.' || quote_ident(pc.relname), \
               (SELECT array_agg(a.attname::text ORDER BY u.i) FROM unnest(k.confkey) WITH ORDINALITY u(n, i) \
                  JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n) \
             FROM pg_constraint k JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
             WHERE k.conrelid = $1::oid AND k.contype = 'f' ORDER BY 1",
            [oid.into()],
        ))
        .await?;
    let mut foreign_keys = Vec::new();
    for r in fks {
        foreign_keys.push(ForeignKey {
            name: r.try_get_by_index(0)?,
            columns: r.try_get_by_index(1)?,
            parent: r.try_get_by_index(2)?,
            parent_columns: r.try_get_by_index(3)?,
        });
    }
    let tenant_scoped = columns.iter().any(|c| c.name == "tenant_id");
    Ok(Table {
        sql_name: sql_name.to_owned(),
        name: format!("{schema}.{name}"),
        tenant_scoped,
        columns,
        primary_key: pk,
        foreign_keys,
    })
}

/// Tables sorted so that every table comes after the tables it references (self-references
/// and cycles are ignored: such rows are seeded without the reference when it is nullable).
pub fn dependency_order(tables: &[Table]) -> Vec<&Table> {
    let by_name: BTreeMap<&str, &Table> = tables.iter().map(|t| (t.sql_name.as_str(), t)).collect();
    let mut done: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    fn visit<'a>(
        t: &'a Table,
        by_name: &BTreeMap<&str, &'a Table>,
        done: &mut Vec<&'a str>,
        stack: &mut Vec<&'a str>,
        out: &mut Vec<&'a Table>,
    ) {
        if done.contains(&t.sql_name.as_str()) || stack.contains(&t.sql_name.as_str()) {
            return;
        }
        stack.push(&t.sql_name);
        for fk in &t.foreign_keys {
            if let Some(parent) = by_name.get(fk.parent.as_str()) {
                visit(parent, by_name, done, stack, out);
            }
        }
        stack.pop();
        done.push(&t.sql_name);
        out.push(t);
    }
    let mut stack = Vec::new();
    for t in tables {
        visit(t, &by_name, &mut done, &mut stack, &mut out);
    }
    out
}
