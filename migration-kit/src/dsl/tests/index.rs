//! How sea-query 1.0.2 itself expresses the PostgreSQL index kinds the
//! tenancy schema needs; these builders exist upstream, so the DSL has none.

use sea_query::{
    ConditionalStatement, Expr, ExprTrait, Func, Index, IndexColumn, IndexType, IntoIden,
    PostgresQueryBuilder,
};

#[test]
fn partial_index() {
    let sql = Index::create()
        .name("users_email_live_key")
        .table(("tenancy", "users"))
        .col("tenant_id")
        .col("email")
        .unique()
        .and_where(Expr::col("deleted_at").is_null())
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE UNIQUE INDEX "users_email_live_key" ON "tenancy"."users" ("tenant_id", "email") WHERE "deleted_at" IS NULL"#
    );
}

#[test]
fn expression_index() {
    let sql = Index::create()
        .name("users_email_lower_idx")
        .table("users")
        .col(Expr::expr(Func::lower(Expr::col("email"))))
        .to_string(PostgresQueryBuilder);
    assert_eq!(
        sql,
        r#"CREATE INDEX "users_email_lower_idx" ON "users" ((LOWER("email")))"#
    );
}

#[test]
fn gin_index() {
    assert_eq!(
        Index::create()
            .name("docs_tags_gin")
            .table("docs")
            .col("tags")
            .full_text()
            .to_string(PostgresQueryBuilder),
        r#"CREATE INDEX "docs_tags_gin" ON "docs" USING GIN ("tags")"#
    );
    assert_eq!(
        Index::create()
            .name("docs_title_trgm")
            .table("docs")
            .col(IndexColumn::from("title").with_operator_class("gin_trgm_ops"))
            .index_type(IndexType::Custom("gin".into_iden()))
            .to_string(PostgresQueryBuilder),
        r#"CREATE INDEX "docs_title_trgm" ON "docs" USING gin ("title" gin_trgm_ops)"#
    );
}
