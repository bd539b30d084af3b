use sea_query::{Expr, ExprTrait, PostgresQueryBuilder, TableRef};

use crate::dsl::{Grantee, Policy, PolicyCommand, PolicyKind};

fn tenant_matches() -> Expr {
    Expr::col("tenant_id").eq(Expr::cust("tenancy.current_tenant_id()"))
}

#[test]
fn renders_minimal_policy_with_explicit_defaults() {
    let sql = Policy::create()
        .name("tenant_isolation")
        .table(("tenancy", "tenants"))
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE POLICY "tenant_isolation" ON "tenancy"."tenants" AS PERMISSIVE FOR ALL"#
    );
}

#[test]
fn renders_full_policy() {
    let sql = Policy::create()
        .name("tenant_isolation")
        .table("documents")
        .permissive()
        .command(PolicyCommand::Select)
        .to("r1")
        .to("r2")
        .using(tenant_matches())
        .with_check(tenant_matches())
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE POLICY "tenant_isolation" ON "documents" AS PERMISSIVE FOR SELECT TO "r1", "r2" USING ("tenant_id" = (tenancy.current_tenant_id())) WITH CHECK ("tenant_id" = (tenancy.current_tenant_id()))"#
    );
}

#[test]
fn renders_restrictive_commands_and_public() {
    let expected = [
        (PolicyCommand::All, "ALL"),
        (PolicyCommand::Select, "SELECT"),
        (PolicyCommand::Insert, "INSERT"),
        (PolicyCommand::Update, "UPDATE"),
        (PolicyCommand::Delete, "DELETE"),
    ];
    for (command, keyword) in expected {
        let sql = Policy::create()
            .name("p")
            .table("t")
            .restrictive()
            .command(command)
            .to_public()
            .with_check(Expr::col("archived").eq(false))
            .to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            format!(
                r#"CREATE POLICY "p" ON "t" AS RESTRICTIVE FOR {keyword} TO PUBLIC WITH CHECK ("archived" = FALSE)"#
            )
        );
    }
}

#[test]
fn inlines_values_as_escaped_literals() {
    let sql = Policy::create()
        .name("p")
        .table("t")
        .using(Expr::col("kind").eq("it's"))
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE POLICY "p" ON "t" AS PERMISSIVE FOR ALL USING ("kind" = E'it\'s')"#
    );
}

#[test]
fn quotes_hostile_names() {
    let sql = Policy::create()
        .name("p\"q")
        .table("a\"b")
        .to("x\"; DROP ROLE postgres; --")
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE POLICY "p""q" ON "a""b" AS PERMISSIVE FOR ALL TO "x""; DROP ROLE postgres; --""#
    );
}

#[test]
fn renders_drop() {
    assert_eq!(
        Policy::drop()
            .name("p")
            .table(("s", "t"))
            .to_string(PostgresQueryBuilder),
        r#"DROP POLICY "p" ON "s"."t""#
    );
    assert_eq!(
        Policy::drop()
            .name("p")
            .table("t")
            .if_exists()
            .to_string(PostgresQueryBuilder),
        r#"DROP POLICY IF EXISTS "p" ON "t""#
    );
}

#[test]
fn renders_alter_of_either_expression_or_both() {
    assert_eq!(
        Policy::alter()
            .name("p")
            .table(("s", "t"))
            .using(tenant_matches())
            .to_string(PostgresQueryBuilder),
        r#"ALTER POLICY "p" ON "s"."t" USING ("tenant_id" = (tenancy.current_tenant_id()))"#
    );
    assert_eq!(
        Policy::alter()
            .name("p\"q")
            .table("t")
            .with_check(Expr::col("archived").eq(false))
            .to_string(PostgresQueryBuilder),
        r#"ALTER POLICY "p""q" ON "t" WITH CHECK ("archived" = FALSE)"#
    );
    assert_eq!(
        Policy::alter()
            .name("p")
            .table("t")
            .using(Expr::col("a").eq(1))
            .with_check(Expr::col("b").eq(2))
            .to_string(PostgresQueryBuilder),
        r#"ALTER POLICY "p" ON "t" USING ("a" = 1) WITH CHECK ("b" = 2)"#
    );
}

#[test]
fn reverse_is_drop_if_exists() {
    let create = Policy::create()
        .name("p")
        .table(("s", "t"))
        .using(tenant_matches())
        .to_owned();
    assert_eq!(
        create.reverse().to_string(PostgresQueryBuilder),
        r#"DROP POLICY IF EXISTS "p" ON "s"."t""#
    );
}

#[test]
fn exposes_what_was_set() {
    let create = Policy::create()
        .name("p")
        .table(("s", "t"))
        .restrictive()
        .command(PolicyCommand::Update)
        .to("r")
        .to_owned();
    assert_eq!(
        create.get_name().map(ToString::to_string),
        Some("p".to_owned())
    );
    assert_eq!(create.get_table(), Some(&TableRef::from(("s", "t"))));
    assert_eq!(create.get_command(), PolicyCommand::Update);
    assert_eq!(create.get_command().as_str(), "UPDATE");
    assert_eq!(create.get_kind(), PolicyKind::Restrictive);
    assert_eq!(create.get_roles(), &[Grantee::role("r")]);
}
