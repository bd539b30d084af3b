use std::borrow::Cow;

use sea_query::{Alias, Iden, PostgresQueryBuilder, Query, TableRef};

use crate::dsl::RowLevelSecurity;

#[test]
fn renders_every_action() {
    assert_eq!(
        RowLevelSecurity::enable("tenants").to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "tenants" ENABLE ROW LEVEL SECURITY"#
    );
    assert_eq!(
        RowLevelSecurity::disable("tenants").to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "tenants" DISABLE ROW LEVEL SECURITY"#
    );
    assert_eq!(
        RowLevelSecurity::force(("tenancy", "tenants")).to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "tenancy"."tenants" FORCE ROW LEVEL SECURITY"#
    );
    assert_eq!(
        RowLevelSecurity::no_force(("tenancy", "tenants")).build(PostgresQueryBuilder),
        r#"ALTER TABLE "tenancy"."tenants" NO FORCE ROW LEVEL SECURITY"#
    );
}

#[test]
fn reverse_swaps_and_round_trips() {
    let cases = [
        (RowLevelSecurity::enable("t"), "DISABLE"),
        (RowLevelSecurity::disable("t"), "ENABLE"),
        (RowLevelSecurity::force("t"), "NO FORCE"),
        (RowLevelSecurity::no_force("t"), "FORCE"),
    ];
    for (statement, reversed_action) in cases {
        let reversed = statement.reverse();
        assert_eq!(
            reversed.to_string(PostgresQueryBuilder),
            format!(r#"ALTER TABLE "t" {reversed_action} ROW LEVEL SECURITY"#)
        );
        assert_eq!(reversed.reverse(), statement);
    }
}

#[test]
fn quotes_hostile_table_names() {
    assert_eq!(
        RowLevelSecurity::enable("a\"b").to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "a""b" ENABLE ROW LEVEL SECURITY"#
    );
    assert_eq!(
        RowLevelSecurity::enable((Alias::new("s\"; --"), Alias::new("t")))
            .to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "s""; --"."t" ENABLE ROW LEVEL SECURITY"#
    );
}

/// An `Iden` claiming a name with a quote is plain; sea-query would trust it.
struct LyingIden;

impl Iden for LyingIden {
    fn quoted(&self) -> Cow<'static, str> {
        Cow::Borrowed("a\"b")
    }

    fn unquoted(&self) -> &str {
        "a\"b"
    }
}

#[test]
fn escapes_even_identifiers_that_claim_to_be_plain() {
    assert_eq!(
        RowLevelSecurity::enable(LyingIden).to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "a""b" ENABLE ROW LEVEL SECURITY"#
    );
}

#[test]
fn ignores_aliases_and_rejects_non_tables() {
    let aliased = TableRef::from("t").alias("x");
    assert_eq!(
        RowLevelSecurity::enable(aliased).to_string(PostgresQueryBuilder),
        r#"ALTER TABLE "t" ENABLE ROW LEVEL SECURITY"#
    );
    let sub_query = TableRef::SubQuery(Box::new(Query::select().to_owned()), "x".into());
    assert_eq!(
        RowLevelSecurity::enable(sub_query).to_string(PostgresQueryBuilder),
        "ALTER TABLE /* not a table name */ ENABLE ROW LEVEL SECURITY"
    );
}
