use sea_orm::sea_query::Expr;

use super::{Render, expr_sql, ident, qualified};

/// `ALTER TABLE ... ALTER COLUMN ...`: nullability and defaults.
#[derive(Debug, Clone)]
pub struct ColumnAlter {
    schema: String,
    table: String,
    column: String,
    action: Action,
}

#[derive(Debug, Clone)]
enum Action {
    SetNotNull,
    DropNotNull,
    SetDefault(Expr),
    DropDefault,
}

impl ColumnAlter {
    fn new(schema: &str, table: &str, column: &str, action: Action) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            column: column.into(),
            action,
        }
    }
    /// `SET NOT NULL` (cheap once a validated `CHECK (col IS NOT NULL)` exists).
    pub fn set_not_null(schema: &str, table: &str, column: &str) -> Self {
        Self::new(schema, table, column, Action::SetNotNull)
    }
    /// `DROP NOT NULL`.
    pub fn drop_not_null(schema: &str, table: &str, column: &str) -> Self {
        Self::new(schema, table, column, Action::DropNotNull)
    }
    /// `SET DEFAULT expr`.
    pub fn set_default(schema: &str, table: &str, column: &str, default: Expr) -> Self {
        Self::new(schema, table, column, Action::SetDefault(default))
    }
    /// `DROP DEFAULT`.
    pub fn drop_default(schema: &str, table: &str, column: &str) -> Self {
        Self::new(schema, table, column, Action::DropDefault)
    }
    /// The inverse: NOT NULL ↔ NULL; a set default's inverse drops it.
    pub fn reverse(&self) -> Self {
        let action = match &self.action {
            Action::SetNotNull => Action::DropNotNull,
            Action::DropNotNull => Action::SetNotNull,
            Action::SetDefault(_) | Action::DropDefault => Action::DropDefault,
        };
        Self::new(&self.schema, &self.table, &self.column, action)
    }
}

impl Render for ColumnAlter {
    fn to_sql(&self) -> String {
        let action = match &self.action {
            Action::SetNotNull => "SET NOT NULL".to_owned(),
            Action::DropNotNull => "DROP NOT NULL".to_owned(),
            Action::SetDefault(e) => format!("SET DEFAULT {}", expr_sql(e)),
            Action::DropDefault => "DROP DEFAULT".to_owned(),
        };
        format!(
            "ALTER TABLE {} ALTER COLUMN {} {action}",
            qualified(&self.schema, &self.table),
            ident(&self.column)
        )
    }
}
