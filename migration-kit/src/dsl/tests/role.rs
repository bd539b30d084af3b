use sea_query::PostgresQueryBuilder;

use crate::dsl::Role;

const LOCKED: &str = "NOBYPASSRLS NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION";

#[test]
fn renders_create_with_safe_defaults() {
    assert_eq!(
        Role::create()
            .name("tenantry_app")
            .to_string(PostgresQueryBuilder),
        format!(r#"CREATE ROLE "tenantry_app" NOLOGIN INHERIT {LOCKED}"#)
    );
    assert_eq!(
        Role::create()
            .name("app")
            .login()
            .no_inherit()
            .to_string(PostgresQueryBuilder),
        format!(r#"CREATE ROLE "app" LOGIN NOINHERIT {LOCKED}"#)
    );
    assert_eq!(
        Role::create()
            .name("app")
            .login()
            .no_login()
            .no_inherit()
            .inherit()
            .to_string(PostgresQueryBuilder),
        format!(r#"CREATE ROLE "app" NOLOGIN INHERIT {LOCKED}"#)
    );
}

#[test]
fn renders_create_if_not_exists_as_do_block() {
    assert_eq!(
        Role::create()
            .name("app")
            .if_not_exists()
            .to_string(PostgresQueryBuilder),
        format!(
            r#"DO $tenantry$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'app') THEN CREATE ROLE "app" NOLOGIN INHERIT {LOCKED}; END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $tenantry$"#
        )
    );
}

#[test]
fn quotes_hostile_role_names() {
    assert_eq!(
        Role::create()
            .name("x\"; DROP ROLE postgres; --")
            .to_string(PostgresQueryBuilder),
        format!(r#"CREATE ROLE "x""; DROP ROLE postgres; --" NOLOGIN INHERIT {LOCKED}"#)
    );
    assert_eq!(
        Role::create()
            .name("o'brien")
            .if_not_exists()
            .to_string(PostgresQueryBuilder),
        format!(
            r#"DO $tenantry$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'o''brien') THEN CREATE ROLE "o'brien" NOLOGIN INHERIT {LOCKED}; END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $tenantry$"#
        )
    );
    assert_eq!(
        Role::create()
            .name("a\\'b")
            .if_not_exists()
            .to_string(PostgresQueryBuilder),
        format!(
            r#"DO $tenantry$ BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = E'a\\''b') THEN CREATE ROLE "a\'b" NOLOGIN INHERIT {LOCKED}; END IF; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $tenantry$"#
        )
    );
}

#[test]
fn do_block_tag_survives_names_containing_it() {
    let sql = Role::create()
        .name("$tenantry$")
        .if_not_exists()
        .to_string(PostgresQueryBuilder);
    assert!(sql.starts_with("DO $tenantry_1$ BEGIN "), "{sql}");
    assert!(sql.ends_with(" END $tenantry_1$"), "{sql}");
    assert!(sql.contains(r#"CREATE ROLE "$tenantry$" NOLOGIN"#), "{sql}");
}

#[test]
fn renders_plain_drop() {
    assert_eq!(
        Role::drop().name("app").to_string(PostgresQueryBuilder),
        r#"DROP ROLE "app""#
    );
    assert_eq!(
        Role::drop()
            .name("a\"b")
            .if_exists()
            .to_string(PostgresQueryBuilder),
        r#"DROP ROLE IF EXISTS "a""b""#
    );
}

fn guarded_drop(literal: &str, iden: &str) -> String {
    format!(
        "DO $tenantry$ DECLARE role_name pg_catalog.text := {literal}; role_oid pg_catalog.oid; \
         BEGIN SELECT oid INTO role_oid FROM pg_catalog.pg_roles WHERE rolname = role_name; \
         IF role_oid IS NULL THEN RAISE NOTICE 'role \"%\" does not exist, skipping', role_name; \
         ELSIF EXISTS (SELECT FROM pg_catalog.pg_shdepend \
         WHERE refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND refobjid = role_oid \
         AND dbid <> (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())) \
         THEN RAISE NOTICE 'role \"%\" is still used outside this database, not dropping it', role_name; \
         ELSIF EXISTS (SELECT FROM pg_catalog.pg_auth_members WHERE roleid = role_oid OR member = role_oid) \
         THEN RAISE NOTICE 'role \"%\" still has members or memberships, not dropping it', role_name; \
         ELSE DROP ROLE {iden}; END IF; END $tenantry$"
    )
}

#[test]
fn renders_drop_if_unused_as_do_block() {
    assert_eq!(
        Role::drop()
            .name("app")
            .if_unused()
            .to_string(PostgresQueryBuilder),
        guarded_drop("'app'", r#""app""#)
    );
    assert_eq!(
        Role::drop()
            .name("o'b\"c")
            .if_exists()
            .if_unused()
            .to_string(PostgresQueryBuilder),
        guarded_drop("'o''b\"c'", r#""o'b""c""#)
    );
}

#[test]
fn reverse_is_guarded_drop() {
    let create = Role::create().name("app").login().to_owned();
    assert_eq!(
        create.reverse().to_string(PostgresQueryBuilder),
        guarded_drop("'app'", r#""app""#)
    );
}
