use sea_orm::sea_query::{Expr, ExprTrait, ForeignKeyAction};

use super::*;

#[test]
fn check_not_valid_then_validate() {
    let add = ConstraintAdd::new(
        "public",
        "a\"b",
        "tid_nn",
        ConstraintKind::Check(Expr::col("tenant_id").is_not_null()),
    )
    .not_valid();
    assert_eq!(
        add.to_sql(),
        r#"ALTER TABLE "public"."a""b" ADD CONSTRAINT "tid_nn" CHECK ("tenant_id" IS NOT NULL) NOT VALID"#
    );
    assert_eq!(
        add.validate().to_sql(),
        r#"ALTER TABLE "public"."a""b" VALIDATE CONSTRAINT "tid_nn""#
    );
    assert_eq!(
        add.reverse().to_sql(),
        r#"ALTER TABLE "public"."a""b" DROP CONSTRAINT IF EXISTS "tid_nn""#
    );
}

#[test]
fn composite_foreign_key() {
    let fk = ConstraintAdd::new(
        "public",
        "tasks",
        "tasks_project_fk",
        ConstraintKind::ForeignKey {
            columns: vec!["tenant_id".into(), "project_id".into()],
            ref_schema: "public".into(),
            ref_table: "projects".into(),
            ref_columns: vec!["tenant_id".into(), "id".into()],
            on_delete: Some(ForeignKeyAction::Cascade),
        },
    )
    .not_valid();
    assert_eq!(
        fk.to_sql(),
        r#"ALTER TABLE "public"."tasks" ADD CONSTRAINT "tasks_project_fk" FOREIGN KEY ("tenant_id", "project_id") REFERENCES "public"."projects" ("tenant_id", "id") ON DELETE CASCADE NOT VALID"#
    );
}

#[test]
fn primary_key_is_never_not_valid() {
    let pk = ConstraintAdd::new(
        "public",
        "t",
        "t_pkey",
        ConstraintKind::PrimaryKey(vec!["tenant_id".into(), "id".into()]),
    )
    .not_valid();
    assert_eq!(
        pk.to_sql(),
        r#"ALTER TABLE "public"."t" ADD CONSTRAINT "t_pkey" PRIMARY KEY ("tenant_id", "id")"#
    );
}

#[test]
fn columns_defaults_and_their_inverses() {
    let nn = ColumnAlter::set_not_null("public", "t", "tenant_id");
    assert_eq!(
        nn.to_sql(),
        r#"ALTER TABLE "public"."t" ALTER COLUMN "tenant_id" SET NOT NULL"#
    );
    assert_eq!(
        nn.reverse().to_sql(),
        r#"ALTER TABLE "public"."t" ALTER COLUMN "tenant_id" DROP NOT NULL"#
    );
    let d = ColumnAlter::set_default(
        "public",
        "t",
        "tenant_id",
        Expr::cust("tenancy.current_tenant_id()"),
    );
    assert_eq!(
        d.to_sql(),
        r#"ALTER TABLE "public"."t" ALTER COLUMN "tenant_id" SET DEFAULT tenancy.current_tenant_id()"#
    );
    assert_eq!(
        d.reverse().to_sql(),
        r#"ALTER TABLE "public"."t" ALTER COLUMN "tenant_id" DROP DEFAULT"#
    );
}

#[test]
fn triggers_schemas_owners() {
    let t = TriggerCreate::before_update("x\"y", "public", "users", ("public", "set_updated_at"));
    assert_eq!(
        t.to_sql(),
        r#"CREATE TRIGGER "x""y" BEFORE UPDATE ON "public"."users" FOR EACH ROW EXECUTE FUNCTION "public"."set_updated_at"()"#
    );
    assert_eq!(
        t.reverse().to_sql(),
        r#"DROP TRIGGER IF EXISTS "x""y" ON "public"."users""#
    );
    let s = SchemaCreate::new("tenancy");
    assert_eq!(s.to_sql(), r#"CREATE SCHEMA IF NOT EXISTS "tenancy""#);
    assert_eq!(s.reverse().to_sql(), r#"DROP SCHEMA IF EXISTS "tenancy""#);
    let o = OwnerAlter::function("tenancy", "api_key_lookup", &["text"], "tenantry_definer");
    assert_eq!(
        o.to_sql(),
        r#"ALTER FUNCTION "tenancy"."api_key_lookup"(text) OWNER TO "tenantry_definer""#
    );
    assert_eq!(
        o.reverse().to_sql(),
        r#"ALTER FUNCTION "tenancy"."api_key_lookup"(text) OWNER TO CURRENT_USER"#
    );
}
