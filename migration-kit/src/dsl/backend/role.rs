//! Writes `CREATE ROLE` / `DROP ROLE` and their guarded `DO` blocks.

use sea_query::{DynIden, PostgresQueryBuilder};

use super::sql;
use crate::dsl::{RoleCreateStatement, RoleDropStatement};

/// Attributes every created role gets; the DSL has no way to turn them on.
const LOCKED_ATTRIBUTES: &str = " NOBYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION";

/// `CREATE ROLE "r" …`, wrapped in a `DO` block when `if_not_exists` is set.
pub(super) fn write_create(
    builder: &PostgresQueryBuilder,
    statement: &RoleCreateStatement,
    out: &mut String,
) {
    let mut create = String::from("CREATE ROLE ");
    if let Some(name) = &statement.name {
        sql::iden(builder, name, &mut create);
    }
    create.push_str(if statement.login {
        " LOGIN"
    } else {
        " NOLOGIN"
    });
    create.push_str(if statement.inherit {
        " INHERIT"
    } else {
        " NOINHERIT"
    });
    create.push_str(LOCKED_ATTRIBUTES);
    if !statement.if_not_exists {
        out.push_str(&create);
        return;
    }
    let mut body =
        String::from(" BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = ");
    name_literal(statement.name.as_ref(), &mut body);
    body.push_str(") THEN ");
    body.push_str(&create);
    // Roles are cluster-wide and the existence check is not atomic: a migration of another
    // database of the same cluster may create the role between check and create.
    body.push_str("; END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END ");
    sql::do_block(&body, out);
}

/// `DROP ROLE [IF EXISTS] "r"`, or the guarded `DO` block of `if_unused`.
pub(super) fn write_drop(
    builder: &PostgresQueryBuilder,
    statement: &RoleDropStatement,
    out: &mut String,
) {
    let mut drop = String::from("DROP ROLE ");
    if statement.if_exists && !statement.if_unused {
        drop.push_str("IF EXISTS ");
    }
    if let Some(name) = &statement.name {
        sql::iden(builder, name, &mut drop);
    }
    if !statement.if_unused {
        out.push_str(&drop);
        return;
    }
    let mut body = String::from(" DECLARE role_name pg_catalog.text := ");
    name_literal(statement.name.as_ref(), &mut body);
    body.push_str(
        "; role_oid pg_catalog.oid; \
         BEGIN SELECT oid INTO role_oid FROM pg_catalog.pg_roles WHERE rolname = role_name; \
         IF role_oid IS NULL THEN \
         RAISE NOTICE 'role \"%\" does not exist, skipping', role_name; \
         ELSIF EXISTS (SELECT FROM pg_catalog.pg_shdepend \
         WHERE refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass \
         AND refobjid = role_oid \
         AND dbid <> (SELECT oid FROM pg_catalog.pg_database \
         WHERE datname = pg_catalog.current_database())) THEN \
         RAISE NOTICE 'role \"%\" is still used outside this database, not dropping it', role_name; \
         ELSIF EXISTS (SELECT FROM pg_catalog.pg_auth_members \
         WHERE roleid = role_oid OR member = role_oid) THEN \
         RAISE NOTICE 'role \"%\" still has members or memberships, not dropping it', role_name; \
         ELSE ",
    );
    body.push_str(&drop);
    body.push_str("; END IF; END ");
    sql::do_block(&body, out);
}

/// Writes the role name as a string literal (`''` when unset).
fn name_literal(name: Option<&DynIden>, out: &mut String) {
    let name = name.map(DynIden::to_string).unwrap_or_default();
    sql::literal(&name, out);
}
