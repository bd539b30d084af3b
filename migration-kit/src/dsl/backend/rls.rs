//! Writes `ALTER TABLE … ROW LEVEL SECURITY`.

use sea_query::PostgresQueryBuilder;

use super::sql;
use crate::dsl::{RowLevelSecurityAction, RowLevelSecurityStatement};

/// `ALTER TABLE "t" ENABLE ROW LEVEL SECURITY` and friends.
pub(super) fn write(
    builder: &PostgresQueryBuilder,
    statement: &RowLevelSecurityStatement,
    out: &mut String,
) {
    out.push_str("ALTER TABLE ");
    sql::table(builder, &statement.table, out);
    out.push_str(match statement.action {
        RowLevelSecurityAction::Enable => " ENABLE",
        RowLevelSecurityAction::Disable => " DISABLE",
        RowLevelSecurityAction::Force => " FORCE",
        RowLevelSecurityAction::NoForce => " NO FORCE",
    });
    out.push_str(" ROW LEVEL SECURITY");
}
