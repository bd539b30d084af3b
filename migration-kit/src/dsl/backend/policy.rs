//! Writes `CREATE POLICY` / `ALTER POLICY` / `DROP POLICY`.

use sea_query::{DynIden, Expr, PostgresQueryBuilder, TableRef};

use super::sql;
use crate::dsl::{PolicyAlterStatement, PolicyCreateStatement, PolicyDropStatement, PolicyKind};

/// `CREATE POLICY "n" ON "t" AS … FOR … [TO …] [USING (…)] [WITH CHECK (…)]`
pub(super) fn write_create(
    builder: &PostgresQueryBuilder,
    statement: &PolicyCreateStatement,
    out: &mut String,
) {
    out.push_str("CREATE POLICY ");
    write_target(builder, &statement.name, &statement.table, out);
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
    write_expressions(builder, &statement.using, &statement.with_check, out);
}

/// `ALTER POLICY "n" ON "t" [USING (…)] [WITH CHECK (…)]`
pub(super) fn write_alter(
    builder: &PostgresQueryBuilder,
    statement: &PolicyAlterStatement,
    out: &mut String,
) {
    out.push_str("ALTER POLICY ");
    write_target(builder, &statement.name, &statement.table, out);
    write_expressions(builder, &statement.using, &statement.with_check, out);
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
    write_target(builder, &statement.name, &statement.table, out);
}

/// `"n" ON "t"`
fn write_target(
    builder: &PostgresQueryBuilder,
    name: &Option<DynIden>,
    table: &Option<TableRef>,
    out: &mut String,
) {
    if let Some(name) = name {
        sql::iden(builder, name, out);
    }
    out.push_str(" ON ");
    if let Some(table) = table {
        sql::table(builder, table, out);
    }
}

/// ` USING (…)` and ` WITH CHECK (…)`, each when given.
fn write_expressions(
    builder: &PostgresQueryBuilder,
    using: &Option<Expr>,
    with_check: &Option<Expr>,
    out: &mut String,
) {
    if let Some(using) = using {
        out.push_str(" USING ");
        sql::parenthesized_expr(builder, using, out);
    }
    if let Some(with_check) = with_check {
        out.push_str(" WITH CHECK ");
        sql::parenthesized_expr(builder, with_check, out);
    }
}
