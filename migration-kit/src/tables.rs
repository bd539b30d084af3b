//! Table references for sea-query.

use sea_orm::sea_query::{Alias, IntoIden, TableRef};

/// A schema-qualified table reference.
pub fn t(schema: &str, table: impl IntoIden) -> TableRef {
    (Alias::new(schema), table.into_iden()).into()
}
