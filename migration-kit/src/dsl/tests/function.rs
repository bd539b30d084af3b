use sea_query::PostgresQueryBuilder;

use crate::dsl::{Function, FunctionLanguage, Grant, GrantObject, Privilege, Volatility};

#[test]
fn renders_current_tenant_function() {
    let sql = Function::create()
        .name(("tenancy", "current_tenant_id"))
        .or_replace()
        .returns("uuid")
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_invoker()
        .set_search_path(["pg_catalog", "pg_temp"])
        .body("SELECT nullif(current_setting('tenancy.tenant_id', true), '')::uuid")
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE OR REPLACE FUNCTION "tenancy"."current_tenant_id"() RETURNS uuid LANGUAGE sql STABLE SECURITY INVOKER SET search_path = "pg_catalog", "pg_temp" AS $tenantry$SELECT nullif(current_setting('tenancy.tenant_id', true), '')::uuid$tenantry$"#
    );
}

#[test]
fn renders_defaults_explicitly_and_omits_unset_clauses() {
    assert_eq!(
        Function::create().name("f").to_string(PostgresQueryBuilder),
        r#"CREATE FUNCTION "f"() LANGUAGE sql VOLATILE SECURITY INVOKER"#
    );
}

#[test]
fn renders_every_option() {
    let sql = Function::create()
        .name(("tenancy", "member_of"))
        .arg("tenant", "uuid")
        .arg("user_name", "character varying(64)")
        .returns("boolean")
        .language(FunctionLanguage::PlPgSql)
        .volatility(Volatility::Immutable)
        .strict()
        .parallel_safe()
        .security_definer()
        .set_search_path(Vec::<&str>::new())
        .body("BEGIN RETURN true; END")
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE FUNCTION "tenancy"."member_of"("tenant" uuid, "user_name" character varying(64)) RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = '' AS $tenantry$BEGIN RETURN true; END$tenantry$"#
    );
}

#[test]
fn renders_returns_table() {
    let sql = Function::create()
        .name("f")
        .returns_table([("id", "uuid"), ("name", "text")])
        .volatility(Volatility::Stable)
        .body("SELECT id, name FROM t")
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE FUNCTION "f"() RETURNS TABLE ("id" uuid, "name" text) LANGUAGE sql STABLE SECURITY INVOKER AS $tenantry$SELECT id, name FROM t$tenantry$"#
    );
}

#[test]
fn picks_a_dollar_tag_absent_from_the_body() {
    let sql = Function::create()
        .name("f")
        .body("SELECT '$tenantry$', '$tenantry_1$'")
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE FUNCTION "f"() LANGUAGE sql VOLATILE SECURITY INVOKER AS $tenantry_2$SELECT '$tenantry$', '$tenantry_1$'$tenantry_2$"#
    );
}

#[test]
fn never_renders_hostile_types_verbatim() {
    let sql = Function::create()
        .name("f")
        .arg("a", "uuid) SECURITY DEFINER AS $$ x $$ --")
        .returns("uuid LEAKPROOF")
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE FUNCTION "f"("a" "uuid) SECURITY DEFINER AS $$ x $$ --") RETURNS "uuid LEAKPROOF" LANGUAGE sql VOLATILE SECURITY INVOKER"#
    );
}

#[test]
fn renders_drop() {
    assert_eq!(
        Function::drop()
            .name(("tenancy", "f"))
            .arg_types(["uuid", "text"])
            .if_exists()
            .to_string(PostgresQueryBuilder),
        r#"DROP FUNCTION IF EXISTS "tenancy"."f"(uuid, text)"#
    );
    assert_eq!(
        Function::drop()
            .name("f")
            .arg_type("uuid")
            .cascade()
            .to_string(PostgresQueryBuilder),
        r#"DROP FUNCTION "f"(uuid) CASCADE"#
    );
    assert_eq!(
        Function::drop().name("f").to_string(PostgresQueryBuilder),
        r#"DROP FUNCTION "f"()"#
    );
}

#[test]
fn reverse_drops_the_same_signature() {
    let create = Function::create()
        .name(("tenancy", "f\"x"))
        .arg("a", "uuid")
        .arg("b", "text[]")
        .returns_table([("c", "int")])
        .body("SELECT 1")
        .to_owned();
    assert_eq!(
        create.reverse().to_string(PostgresQueryBuilder),
        r#"DROP FUNCTION IF EXISTS "tenancy"."f""x"(uuid, text[])"#
    );
}

#[test]
fn a_procedure_has_no_returns_and_no_volatility_and_drops_as_one() {
    let create = Function::create()
        .procedure()
        .name(("tenancy", "p"))
        .or_replace()
        .returns("void")
        .language(FunctionLanguage::PlPgSql)
        .volatility(Volatility::Stable)
        .security_invoker()
        .body("BEGIN END")
        .to_owned();
    assert_eq!(
        create.to_string(PostgresQueryBuilder),
        r#"CREATE OR REPLACE PROCEDURE "tenancy"."p"() LANGUAGE plpgsql SECURITY INVOKER AS $tenantry$BEGIN END$tenantry$"#
    );
    assert_eq!(
        create.reverse().to_string(PostgresQueryBuilder),
        r#"DROP PROCEDURE IF EXISTS "tenancy"."p"()"#
    );
    assert_eq!(
        Grant::privileges([Privilege::Execute])
            .on(GrantObject::procedure(("tenancy", "p"), Vec::<&str>::new()))
            .to("app")
            .to_string(PostgresQueryBuilder),
        r#"GRANT EXECUTE ON PROCEDURE "tenancy"."p"() TO "app""#
    );
}
