//! Catalog probes: one-boolean queries that tell a resumable step it is already done.

use sea_orm::{DbBackend, Statement};

/// `s` as a string literal (quotes doubled; `standard_conforming_strings` on).
pub(crate) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A raw statement from SQL a builder rendered.
pub fn raw(sql: String) -> Statement {
    Statement::from_string(DbBackend::Postgres, sql)
}

fn probe(sql: String) -> Statement {
    raw(sql)
}

/// True when extension `name` cannot be installed on this server.
pub fn extension_unavailable(name: &str) -> Statement {
    probe(format!(
        "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = {})",
        lit(name)
    ))
}

fn constraint(schema: &str, table: &str, name: &str) -> String {
    format!(
        "SELECT FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
         WHERE n.nspname = {} AND r.relname = {} AND c.conname = {}",
        lit(schema),
        lit(table),
        lit(name)
    )
}

/// True when constraint `name` exists on `schema.table`.
pub fn constraint_exists(schema: &str, table: &str, name: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS ({})",
        constraint(schema, table, name)
    ))
}

/// True when constraint `name` exists and is validated.
pub fn constraint_validated(schema: &str, table: &str, name: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS ({} AND c.convalidated)",
        constraint(schema, table, name)
    ))
}

/// True when constraint `name` is absent.
pub fn constraint_absent(schema: &str, table: &str, name: &str) -> Statement {
    probe(format!(
        "SELECT NOT EXISTS ({})",
        constraint(schema, table, name)
    ))
}

/// True when `schema.table.column` is NOT NULL.
pub fn column_not_null(schema: &str, table: &str, column: &str) -> Statement {
    probe(format!(
        "SELECT coalesce((SELECT a.attnotnull FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class r ON r.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
         WHERE n.nspname = {} AND r.relname = {} AND a.attname = {} AND NOT a.attisdropped), false)",
        lit(schema),
        lit(table),
        lit(column)
    ))
}

/// True when the primary key of `schema.table` includes `column`.
pub fn primary_key_includes(schema: &str, table: &str, column: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum = ANY (c.conkey) \
         WHERE n.nspname = {} AND r.relname = {} AND c.contype = 'p' AND a.attname = {})",
        lit(schema),
        lit(table),
        lit(column)
    ))
}

/// True when a valid index `name` on `schema.table` exists (an index of that name on another
/// table is not it).
pub fn index_valid(schema: &str, table: &str, name: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = {} AND c.relname = {} AND i.indisvalid \
           AND i.indrelid = pg_catalog.to_regclass({}))",
        lit(schema),
        lit(name),
        lit(&crate::guards::quote_qualified(schema, table))
    ))
}

/// True when either probe is true.
pub fn either(a: Statement, b: Statement) -> Statement {
    probe(format!(
        "SELECT coalesce(({}), false) OR coalesce(({}), false)",
        a.sql, b.sql
    ))
}

/// True when `schema.table` has a column `column`.
pub fn column_exists(schema: &str, table: &str, column: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class r ON r.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace \
         WHERE n.nspname = {} AND r.relname = {} AND a.attname = {} AND NOT a.attisdropped)",
        lit(schema),
        lit(table),
        lit(column)
    ))
}

/// True when no index `name` exists in `schema`.
pub fn index_absent(schema: &str, name: &str) -> Statement {
    probe(format!(
        "SELECT NOT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = {} AND c.relname = {} AND c.relkind IN ('i', 'I'))",
        lit(schema),
        lit(name)
    ))
}

/// True when policy `name` exists on `schema.table`.
pub fn policy_exists(schema: &str, table: &str, name: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_policies WHERE schemaname = {} AND tablename = {} AND policyname = {})",
        lit(schema),
        lit(table),
        lit(name)
    ))
}

/// True when the index `name` in `schema` leads with `column` (a widened unique).
pub fn index_leads_with(schema: &str, name: &str, column: &str) -> Statement {
    probe(format!(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE n.nspname = {} AND c.relname = {} AND a.attname = {})",
        lit(schema),
        lit(name),
        lit(column)
    ))
}
