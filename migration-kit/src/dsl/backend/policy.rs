//! Writes `CREATE POLICY` / `DROP POLICY`.

use sea_query::PostgresQueryBuilder;

use super::sql;
use crate::dsl::{PolicyCreateStatement, PolicyDropStatement, PolicyKind};

/// `CREATE POLICY "n" ON "t" AS … FOR … [TO …] [USING (…)] [WITH CHECK (…)]`
pub(super) fn write_create(
    builder: &PostgresQueryBuilder,
    statement: &PolicyCreateStatement,
    out: &mut String,
) {
    out.push_str("CREATE POLICY ");
    if let Some(name) = &statement.name {
        sql::iden(builder, name, out);
    }
    out.push_str(" ON ");
    if let Some(table) = &statement.table {
        sql::table(builder, table, out);
    }
    out.push_str(match statement.kind {
        PolicyKind::Permissive => " AS PERMISSIVE",
        PolicyKind::Restrictive => " AS RESTRICTIVE",
    });
    out.push_str(" FOR ");
    out.push_str(statement.command.as_str());
    if !statement.roles.is_empty() {
        out.push_str(" TO ");
        sql::grantees(builder, &statement.roles, out);
    }
    if let Some(using) = &statement.using {
        out.push_str(" USING ");
        sql::parenthesized_expr(builder, using, out);
    }
    if let Some(with_check) = &statement.with_check {
        out.push_str(" WITH CHECK ");
        sql::parenthesized_expr(builder, with_check, out);
    }
}

/// `DROP POLICY [IF EXISTS] "n" ON "t"`
pub(super) fn write_drop(
    builder: &PostgresQueryBuilder,
    statement: &PolicyDropStatement,
    out: &mut String,
) {
    out.push_str("DROP POLICY ");
    if statement.if_exists {
        out.push_str("IF EXISTS ");
    }
    if let Some(name) = &statement.name {
        sql::iden(builder, name, out);
    }
    out.push_str(" ON ");
    if let Some(table) = &statement.table {
        sql::table(builder, table, out);
    }
}
