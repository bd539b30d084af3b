//! Typed builders for PostgreSQL's security objects.
//!
//! `sea-query` 1.0 builds tables, indexes, types and queries, but it has no
//! builders for the objects a multi-tenant schema is secured with: row level
//! security switches, policies, `SECURITY DEFINER`/`INVOKER` functions, roles,
//! grants and default privileges. Writing those as raw SQL strings invites
//! quoting mistakes, so this module provides them in `sea-query`'s own style:
//!
//! * an entry type (`Policy`, `Role`, `Grant`, …) whose constructors return a
//!   statement struct with chained `&mut self -> &mut Self` setters;
//! * a backend trait, [`TenancyBuilder`], implemented for
//!   [`sea_query::PostgresQueryBuilder`], which writes the SQL;
//! * `to_string(PostgresQueryBuilder)` / `build(PostgresQueryBuilder)` on every
//!   statement, plus [`sea_orm::StatementBuilder`] so a statement can be handed
//!   straight to `SchemaManager::execute`;
//! * `reverse()` on every statement that has an inverse, so a migration's
//!   `down` can be derived from its `up`.
//!
//! Identifiers are always rendered double-quoted with embedded `"` doubled,
//! string literals are escaped, and function bodies are dollar-quoted with a
//! tag that does not occur in the body. Only PostgreSQL is supported.

#![warn(missing_docs)]

mod backend;
pub(crate) use backend::sql::do_block;
mod default_privileges;
mod error;
mod function;
mod grant;
mod grant_object;
mod grantee;
mod policy;
mod privilege;
mod rls;
mod role;
mod sql_type;

#[cfg(test)]
mod tests;

pub use backend::TenancyBuilder;
pub use default_privileges::{
    DefaultObjects, DefaultPrivileges, DefaultPrivilegesGrantStatement,
    DefaultPrivilegesRevokeStatement,
};
pub use error::DslError;
pub use function::{
    Function, FunctionCreateStatement, FunctionDropStatement, FunctionLanguage, FunctionReturns,
    Volatility,
};
pub use grant::{
    Grant, GrantStatement, Revoke, RevokeStatement, RoleGrantStatement, RoleRevokeStatement,
};
pub use grant_object::GrantObject;
pub use grantee::Grantee;
pub use policy::{
    Policy, PolicyAlterStatement, PolicyCommand, PolicyCreateStatement, PolicyDropStatement,
    PolicyKind,
};
pub use privilege::Privilege;
pub use rls::{RowLevelSecurity, RowLevelSecurityAction, RowLevelSecurityStatement};
pub use role::{Role, RoleCreateStatement, RoleDropStatement};
pub use sql_type::SqlType;

/// Gives a statement `to_string`/`build` (rendering through a
/// [`TenancyBuilder`]) and implements [`sea_orm::StatementBuilder`] for it.
///
/// `StatementBuilder::build` always renders PostgreSQL SQL: these objects
/// only exist in PostgreSQL. For another [`sea_orm::DbBackend`] it returns a
/// statement tagged with that backend but carrying the PostgreSQL text, which
/// that database will reject when executed; it never panics.
macro_rules! tenancy_statement {
    ($statement:ty, $prepare:ident) => {
        impl $statement {
            /// Renders the statement as SQL text for `builder`.
            pub fn to_string<T: TenancyBuilder>(&self, builder: T) -> String {
                let mut sql = String::with_capacity(128);
                builder.$prepare(self, &mut sql);
                sql
            }

            /// Renders the statement as SQL text for `builder` (same as `to_string`).
            pub fn build<T: TenancyBuilder>(&self, builder: T) -> String {
                self.to_string(builder)
            }
        }

        impl sea_orm::StatementBuilder for $statement {
            fn build(&self, db_backend: &sea_orm::DbBackend) -> sea_orm::Statement {
                sea_orm::Statement::from_string(
                    *db_backend,
                    self.to_string(sea_query::PostgresQueryBuilder),
                )
            }
        }
    };
}

tenancy_statement!(
    RowLevelSecurityStatement,
    prepare_row_level_security_statement
);
tenancy_statement!(PolicyCreateStatement, prepare_policy_create_statement);
tenancy_statement!(PolicyAlterStatement, prepare_policy_alter_statement);
tenancy_statement!(PolicyDropStatement, prepare_policy_drop_statement);
tenancy_statement!(FunctionCreateStatement, prepare_function_create_statement);
tenancy_statement!(FunctionDropStatement, prepare_function_drop_statement);
tenancy_statement!(RoleCreateStatement, prepare_role_create_statement);
tenancy_statement!(RoleDropStatement, prepare_role_drop_statement);
tenancy_statement!(GrantStatement, prepare_grant_statement);
tenancy_statement!(RevokeStatement, prepare_revoke_statement);
tenancy_statement!(RoleGrantStatement, prepare_role_grant_statement);
tenancy_statement!(RoleRevokeStatement, prepare_role_revoke_statement);
tenancy_statement!(
    DefaultPrivilegesGrantStatement,
    prepare_default_privileges_grant_statement
);
tenancy_statement!(
    DefaultPrivilegesRevokeStatement,
    prepare_default_privileges_revoke_statement
);
