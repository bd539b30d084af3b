//! Writes `GRANT`, `REVOKE` and `ALTER DEFAULT PRIVILEGES`.

use sea_query::PostgresQueryBuilder;

use super::sql;
use crate::dsl::default_privileges::DefaultPrivilegesSpec;
use crate::dsl::{
    DefaultPrivilegesGrantStatement, DefaultPrivilegesRevokeStatement, GrantObject, GrantStatement,
    RevokeStatement, RoleGrantStatement, RoleRevokeStatement,
};

/// `GRANT <privileges> ON <object> TO <grantees> [WITH GRANT OPTION]`
pub(super) fn write_grant(
    builder: &PostgresQueryBuilder,
    statement: &GrantStatement,
    out: &mut String,
) {
    out.push_str("GRANT ");
    sql::privileges(&statement.privileges, out);
    on_object(builder, statement.object.as_ref(), out);
    out.push_str(" TO ");
    sql::grantees(builder, &statement.grantees, out);
    if statement.with_grant_option {
        out.push_str(" WITH GRANT OPTION");
    }
}

/// `REVOKE <privileges> ON <object> FROM <grantees> [CASCADE]`
pub(super) fn write_revoke(
    builder: &PostgresQueryBuilder,
    statement: &RevokeStatement,
    out: &mut String,
) {
    out.push_str("REVOKE ");
    sql::privileges(&statement.privileges, out);
    on_object(builder, statement.object.as_ref(), out);
    out.push_str(" FROM ");
    sql::grantees(builder, &statement.grantees, out);
    if statement.cascade {
        out.push_str(" CASCADE");
    }
}

/// `GRANT "group" TO "member", …`
pub(super) fn write_role_grant(
    builder: &PostgresQueryBuilder,
    statement: &RoleGrantStatement,
    out: &mut String,
) {
    out.push_str("GRANT ");
    sql::iden(builder, &statement.group, out);
    out.push_str(" TO ");
    sql::idens(builder, &statement.members, out);
}

/// `REVOKE "group" FROM "member", …`
pub(super) fn write_role_revoke(
    builder: &PostgresQueryBuilder,
    statement: &RoleRevokeStatement,
    out: &mut String,
) {
    out.push_str("REVOKE ");
    sql::iden(builder, &statement.group, out);
    out.push_str(" FROM ");
    sql::idens(builder, &statement.members, out);
}

/// `ALTER DEFAULT PRIVILEGES … GRANT … TO … [WITH GRANT OPTION]`
pub(super) fn write_default_grant(
    builder: &PostgresQueryBuilder,
    statement: &DefaultPrivilegesGrantStatement,
    out: &mut String,
) {
    default_privileges(builder, &statement.spec, "GRANT", "TO", out);
    if statement.with_grant_option {
        out.push_str(" WITH GRANT OPTION");
    }
}

/// `ALTER DEFAULT PRIVILEGES … REVOKE … FROM … [CASCADE]`
pub(super) fn write_default_revoke(
    builder: &PostgresQueryBuilder,
    statement: &DefaultPrivilegesRevokeStatement,
    out: &mut String,
) {
    default_privileges(builder, &statement.spec, "REVOKE", "FROM", out);
    if statement.cascade {
        out.push_str(" CASCADE");
    }
}

/// ` ON <object>`; the keyword is written even without an object so that
/// PostgreSQL rejects the statement instead of reading a role grant.
fn on_object(builder: &PostgresQueryBuilder, object: Option<&GrantObject>, out: &mut String) {
    out.push_str(" ON ");
    let Some(object) = object else {
        return;
    };
    match object {
        GrantObject::Table(table) => {
            out.push_str("TABLE ");
            sql::table(builder, table, out);
        }
        GrantObject::Tables(tables) => {
            out.push_str("TABLE ");
            sql::list(tables, out, |table, out| sql::table(builder, table, out));
        }
        GrantObject::AllTablesInSchema(schema) => {
            out.push_str("ALL TABLES IN SCHEMA ");
            sql::iden(builder, schema, out);
        }
        GrantObject::Sequence(sequence) => {
            out.push_str("SEQUENCE ");
            sql::table(builder, sequence, out);
        }
        GrantObject::AllSequencesInSchema(schema) => {
            out.push_str("ALL SEQUENCES IN SCHEMA ");
            sql::iden(builder, schema, out);
        }
        GrantObject::Function { name, arg_types } | GrantObject::Procedure { name, arg_types } => {
            out.push_str(if matches!(object, GrantObject::Procedure { .. }) {
                "PROCEDURE "
            } else {
                "FUNCTION "
            });
            sql::qualified_name(builder, name, out);
            sql::signature(builder, arg_types, out);
        }
        GrantObject::AllFunctionsInSchema(schema) => {
            out.push_str("ALL FUNCTIONS IN SCHEMA ");
            sql::iden(builder, schema, out);
        }
        GrantObject::Schema(schema) => {
            out.push_str("SCHEMA ");
            sql::iden(builder, schema, out);
        }
        GrantObject::Database(database) => {
            out.push_str("DATABASE ");
            sql::iden(builder, database, out);
        }
    }
}

/// The shared part of both default-privilege statements.
fn default_privileges(
    builder: &PostgresQueryBuilder,
    spec: &DefaultPrivilegesSpec,
    action: &str,
    direction: &str,
    out: &mut String,
) {
    out.push_str("ALTER DEFAULT PRIVILEGES");
    if !spec.for_roles.is_empty() {
        out.push_str(" FOR ROLE ");
        sql::idens(builder, &spec.for_roles, out);
    }
    if !spec.in_schemas.is_empty() {
        out.push_str(" IN SCHEMA ");
        sql::idens(builder, &spec.in_schemas, out);
    }
    out.push(' ');
    out.push_str(action);
    out.push(' ');
    sql::privileges(&spec.privileges, out);
    out.push_str(" ON ");
    if let Some(objects) = spec.objects {
        out.push_str(objects.as_str());
    }
    out.push(' ');
    out.push_str(direction);
    out.push(' ');
    sql::grantees(builder, &spec.grantees, out);
}
