//! Rendering of the tenancy statements into SQL.
//!
//! Every statement is written into a `String`. That is deliberate: a
//! `String` writer makes `sea-query` inline expression values as escaped
//! literals, which is what DDL needs (PostgreSQL cannot bind parameters in
//! `CREATE POLICY` and the like).

use sea_query::{PostgresQueryBuilder, QuotedBuilder};

use super::{
    DefaultPrivilegesGrantStatement, DefaultPrivilegesRevokeStatement, FunctionCreateStatement,
    FunctionDropStatement, GrantStatement, PolicyAlterStatement, PolicyCreateStatement,
    PolicyDropStatement, RevokeStatement, RoleCreateStatement, RoleDropStatement,
    RoleGrantStatement, RoleRevokeStatement, RowLevelSecurityStatement,
};

mod access;
mod function;
mod policy;
mod rls;
mod role;
pub(in crate::dsl) mod sql;

/// A backend that can write the tenancy statements, in the manner of
/// `sea-query`'s `TypeBuilder`. Implemented for [`PostgresQueryBuilder`].
pub trait TenancyBuilder: QuotedBuilder {
    /// Writes a [`RowLevelSecurityStatement`].
    fn prepare_row_level_security_statement(
        &self,
        statement: &RowLevelSecurityStatement,
        sql: &mut String,
    );

    /// Writes a [`PolicyCreateStatement`].
    fn prepare_policy_create_statement(&self, statement: &PolicyCreateStatement, sql: &mut String);

    /// Writes a [`PolicyAlterStatement`].
    fn prepare_policy_alter_statement(&self, statement: &PolicyAlterStatement, sql: &mut String);

    /// Writes a [`PolicyDropStatement`].
    fn prepare_policy_drop_statement(&self, statement: &PolicyDropStatement, sql: &mut String);

    /// Writes a [`FunctionCreateStatement`].
    fn prepare_function_create_statement(
        &self,
        statement: &FunctionCreateStatement,
        sql: &mut String,
    );

    /// Writes a [`FunctionDropStatement`].
    fn prepare_function_drop_statement(&self, statement: &FunctionDropStatement, sql: &mut String);

    /// Writes a [`RoleCreateStatement`].
    fn prepare_role_create_statement(&self, statement: &RoleCreateStatement, sql: &mut String);

    /// Writes a [`RoleDropStatement`].
    fn prepare_role_drop_statement(&self, statement: &RoleDropStatement, sql: &mut String);

    /// Writes a [`GrantStatement`].
    fn prepare_grant_statement(&self, statement: &GrantStatement, sql: &mut String);

    /// Writes a [`RevokeStatement`].
    fn prepare_revoke_statement(&self, statement: &RevokeStatement, sql: &mut String);

    /// Writes a [`RoleGrantStatement`].
    fn prepare_role_grant_statement(&self, statement: &RoleGrantStatement, sql: &mut String);

    /// Writes a [`RoleRevokeStatement`].
    fn prepare_role_revoke_statement(&self, statement: &RoleRevokeStatement, sql: &mut String);

    /// Writes a [`DefaultPrivilegesGrantStatement`].
    fn prepare_default_privileges_grant_statement(
        &self,
        statement: &DefaultPrivilegesGrantStatement,
        sql: &mut String,
    );

    /// Writes a [`DefaultPrivilegesRevokeStatement`].
    fn prepare_default_privileges_revoke_statement(
        &self,
        statement: &DefaultPrivilegesRevokeStatement,
        sql: &mut String,
    );
}

impl TenancyBuilder for PostgresQueryBuilder {
    fn prepare_row_level_security_statement(
        &self,
        statement: &RowLevelSecurityStatement,
        sql: &mut String,
    ) {
        rls::write(self, statement, sql);
    }

    fn prepare_policy_create_statement(&self, statement: &PolicyCreateStatement, sql: &mut String) {
        policy::write_create(self, statement, sql);
    }

    fn prepare_policy_alter_statement(&self, statement: &PolicyAlterStatement, sql: &mut String) {
        policy::write_alter(self, statement, sql);
    }

    fn prepare_policy_drop_statement(&self, statement: &PolicyDropStatement, sql: &mut String) {
        policy::write_drop(self, statement, sql);
    }

    fn prepare_function_create_statement(
        &self,
        statement: &FunctionCreateStatement,
        sql: &mut String,
    ) {
        function::write_create(self, statement, sql);
    }

    fn prepare_function_drop_statement(&self, statement: &FunctionDropStatement, sql: &mut String) {
        function::write_drop(self, statement, sql);
    }

    fn prepare_role_create_statement(&self, statement: &RoleCreateStatement, sql: &mut String) {
        role::write_create(self, statement, sql);
    }

    fn prepare_role_drop_statement(&self, statement: &RoleDropStatement, sql: &mut String) {
        role::write_drop(self, statement, sql);
    }

    fn prepare_grant_statement(&self, statement: &GrantStatement, sql: &mut String) {
        access::write_grant(self, statement, sql);
    }

    fn prepare_revoke_statement(&self, statement: &RevokeStatement, sql: &mut String) {
        access::write_revoke(self, statement, sql);
    }

    fn prepare_role_grant_statement(&self, statement: &RoleGrantStatement, sql: &mut String) {
        access::write_role_grant(self, statement, sql);
    }

    fn prepare_role_revoke_statement(&self, statement: &RoleRevokeStatement, sql: &mut String) {
        access::write_role_revoke(self, statement, sql);
    }

    fn prepare_default_privileges_grant_statement(
        &self,
        statement: &DefaultPrivilegesGrantStatement,
        sql: &mut String,
    ) {
        access::write_default_grant(self, statement, sql);
    }

    fn prepare_default_privileges_revoke_statement(
        &self,
        statement: &DefaultPrivilegesRevokeStatement,
        sql: &mut String,
    ) {
        access::write_default_revoke(self, statement, sql);
    }
}
