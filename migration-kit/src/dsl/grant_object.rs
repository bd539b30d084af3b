//! The objects privileges are granted on.

use sea_query::{DynIden, IntoIden, IntoTableRef, TableName, TableRef};

use super::SqlType;

/// The `ON …` part of a `GRANT`/`REVOKE`.
///
/// Table references follow the rules described on
/// [`RowLevelSecurityStatement`](super::RowLevelSecurityStatement).
#[derive(Debug, Clone, PartialEq)]
pub enum GrantObject {
    /// `TABLE "t"`
    Table(TableRef),
    /// `TABLE "a", "b"`
    Tables(Vec<TableRef>),
    /// `ALL TABLES IN SCHEMA "s"`
    AllTablesInSchema(DynIden),
    /// `SEQUENCE "s"`
    Sequence(TableRef),
    /// `ALL SEQUENCES IN SCHEMA "s"`
    AllSequencesInSchema(DynIden),
    /// `FUNCTION "s"."f"(<type>, …)`
    Function {
        /// The (possibly schema-qualified) function name.
        name: TableName,
        /// The argument types of its signature.
        arg_types: Vec<SqlType>,
    },
    /// `PROCEDURE "s"."p"(<type>, …)` (`ON FUNCTION` refuses a procedure)
    Procedure {
        /// The (possibly schema-qualified) procedure name.
        name: TableName,
        /// The argument types of its signature.
        arg_types: Vec<SqlType>,
    },
    /// `ALL FUNCTIONS IN SCHEMA "s"`
    AllFunctionsInSchema(DynIden),
    /// `SCHEMA "s"`
    Schema(DynIden),
    /// `DATABASE "d"`
    Database(DynIden),
}

impl GrantObject {
    /// `TABLE "t"`
    pub fn table<T: IntoTableRef>(table: T) -> Self {
        Self::Table(table.into_table_ref())
    }

    /// `TABLE "a", "b"`
    pub fn tables<I, T>(tables: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: IntoTableRef,
    {
        Self::Tables(
            tables
                .into_iter()
                .map(IntoTableRef::into_table_ref)
                .collect(),
        )
    }

    /// `ALL TABLES IN SCHEMA "s"`
    pub fn all_tables_in_schema<T: IntoIden>(schema: T) -> Self {
        Self::AllTablesInSchema(schema.into_iden())
    }

    /// `SEQUENCE "s"`
    pub fn sequence<T: IntoTableRef>(sequence: T) -> Self {
        Self::Sequence(sequence.into_table_ref())
    }

    /// `ALL SEQUENCES IN SCHEMA "s"`
    pub fn all_sequences_in_schema<T: IntoIden>(schema: T) -> Self {
        Self::AllSequencesInSchema(schema.into_iden())
    }

    /// `FUNCTION "s"."f"(<type>, …)`, e.g. `function(("s", "f"), ["uuid"])`.
    pub fn function<N, I, T>(name: N, arg_types: I) -> Self
    where
        N: Into<TableName>,
        I: IntoIterator<Item = T>,
        T: Into<SqlType>,
    {
        let (name, arg_types) = routine(name, arg_types);
        Self::Function { name, arg_types }
    }

    /// `PROCEDURE "s"."p"(<type>, …)`, e.g. `procedure(("s", "p"), Vec::<&str>::new())`.
    pub fn procedure<N, I, T>(name: N, arg_types: I) -> Self
    where
        N: Into<TableName>,
        I: IntoIterator<Item = T>,
        T: Into<SqlType>,
    {
        let (name, arg_types) = routine(name, arg_types);
        Self::Procedure { name, arg_types }
    }

    /// `ALL FUNCTIONS IN SCHEMA "s"`
    pub fn all_functions_in_schema<T: IntoIden>(schema: T) -> Self {
        Self::AllFunctionsInSchema(schema.into_iden())
    }

    /// `SCHEMA "s"`
    pub fn schema<T: IntoIden>(schema: T) -> Self {
        Self::Schema(schema.into_iden())
    }

    /// `DATABASE "d"`
    pub fn database<T: IntoIden>(database: T) -> Self {
        Self::Database(database.into_iden())
    }
}

/// A routine's name and signature, as [`GrantObject::function`] and
/// [`GrantObject::procedure`] take them.
fn routine<N, I, T>(name: N, arg_types: I) -> (TableName, Vec<SqlType>)
where
    N: Into<TableName>,
    I: IntoIterator<Item = T>,
    T: Into<SqlType>,
{
    (name.into(), arg_types.into_iter().map(Into::into).collect())
}
