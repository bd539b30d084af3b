//! Table-level DDL that sea-query 1.0 cannot express but safe online migrations need:
//! constraints added `NOT VALID` and validated later, `SET NOT NULL`, defaults, primary keys
//! built from an existing index, triggers, schemas and ownership changes.
//!
//! Each statement renders PostgreSQL through [`Render::to_sql`], implements
//! `sea_orm::StatementBuilder`, and (where one exists) knows its inverse via `reverse()`.

mod column;
mod constraint;
mod owner;
mod schema;
mod trigger;
mod view;

pub use column::ColumnAlter;
pub use constraint::{ConstraintAdd, ConstraintDrop, ConstraintKind, ConstraintValidate};
pub use owner::{OwnedObject, OwnerAlter};
pub use schema::{SchemaCreate, SchemaDrop, TableSetSchema};
pub use trigger::{TriggerCreate, TriggerDrop};
pub use view::ViewSecurityInvoker;

use sea_orm::sea_query::{Expr, PostgresQueryBuilder, QueryBuilder};

/// Renders a statement as PostgreSQL.
pub trait Render {
    /// The SQL text.
    fn to_sql(&self) -> String;
}

macro_rules! impl_statement_builder {
    ($($ty:ty),* $(,)?) => {$(
        impl sea_orm::StatementBuilder for $ty {
            /// PostgreSQL only: the same SQL is returned for every backend.
            fn build(&self, db_backend: &sea_orm::DbBackend) -> sea_orm::Statement {
                sea_orm::Statement::from_string(*db_backend, Render::to_sql(self))
            }
        }
    )*};
}
impl_statement_builder!(
    ColumnAlter,
    ConstraintAdd,
    ConstraintDrop,
    ConstraintValidate,
    OwnerAlter,
    SchemaCreate,
    SchemaDrop,
    TableSetSchema,
    TriggerCreate,
    TriggerDrop,
    ViewSecurityInvoker,
);

/// Quotes one identifier (`"` doubled).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a schema-qualified name.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// Quotes a list of identifiers, comma-separated.
pub fn ident_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders a sea-query expression with its values inlined.
pub fn expr_sql(expr: &Expr) -> String {
    let mut sql = String::new();
    PostgresQueryBuilder.prepare_expr(expr, &mut sql);
    sql
}

#[cfg(test)]
mod tests;
