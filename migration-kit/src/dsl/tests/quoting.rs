use sea_query::{DynIden, PostgresQueryBuilder};

use crate::dsl::backend::sql;

fn literal(text: &str) -> String {
    let mut out = String::new();
    sql::literal(text, &mut out);
    out
}

fn dollar_quoted(body: &str) -> String {
    let mut out = String::new();
    sql::dollar_quoted(body, &mut out);
    out
}

#[test]
fn literals_double_quotes_and_backslashes() {
    assert_eq!(literal("plain"), "'plain'");
    assert_eq!(literal(""), "''");
    assert_eq!(literal("o'brien"), "'o''brien'");
    assert_eq!(literal("a\\b'c"), "E'a\\\\b''c'");
}

#[test]
fn dollar_tags_never_occur_in_the_body() {
    assert_eq!(dollar_quoted("x"), "$tenantry$x$tenantry$");
    assert_eq!(dollar_quoted(""), "$tenantry$$tenantry$");
    assert_eq!(
        dollar_quoted("a $tenantry$ b"),
        "$tenantry_1$a $tenantry$ b$tenantry_1$"
    );
    // A body ending in a prefix of the tag would close early with `$tenantry$`.
    assert_eq!(
        dollar_quoted("x $tenantry"),
        "$tenantry_1$x $tenantry$tenantry_1$"
    );
    assert_eq!(
        dollar_quoted("$tenantry$ $tenantry_1$ $tenantry_2"),
        "$tenantry_3$$tenantry$ $tenantry_1$ $tenantry_2$tenantry_3$"
    );
}

#[test]
fn identifiers_are_always_escaped() {
    let mut out = String::new();
    sql::iden(
        &PostgresQueryBuilder,
        &DynIden::from("a\"\"b".to_owned()),
        &mut out,
    );
    assert_eq!(out, r#""a""""b""#);
}
