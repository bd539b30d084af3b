//! Small writers shared by the statement renderers.

use sea_query::{
    DatabaseName, DynIden, Expr, PostgresQueryBuilder, QueryBuilder, QuotedBuilder, SchemaName,
    TableName, TableRef,
};

use crate::dsl::{Grantee, Privilege, SqlType};

/// Written in place of a table reference that is not a table name, so
/// PostgreSQL rejects the statement with a syntax error.
const NOT_A_TABLE: &str = "/* not a table name */";

/// Writes a double-quoted identifier with embedded `"` doubled.
///
/// `sea-query` escapes only identifiers it holds as owned strings and
/// trusts borrowed ones to be plain. A hand-written `Iden` could break that
/// promise, so the identifier is always passed as an owned string.
pub(in crate::dsl) fn iden(builder: &PostgresQueryBuilder, iden: &DynIden, sql: &mut String) {
    builder.prepare_iden(&DynIden::from(iden.to_string()), sql);
}

/// Writes `items` separated by `, `.
pub(in crate::dsl) fn list<T>(
    items: &[T],
    sql: &mut String,
    mut write: impl FnMut(&T, &mut String),
) {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            sql.push_str(", ");
        }
        write(item, sql);
    }
}

/// Writes `"a", "b"`.
pub(in crate::dsl) fn idens(builder: &PostgresQueryBuilder, idens: &[DynIden], sql: &mut String) {
    list(idens, sql, |name, sql| iden(builder, name, sql));
}

/// Writes `"db"."schema"."name"`, leaving out the parts that are not given.
pub(in crate::dsl) fn qualified_name(
    builder: &PostgresQueryBuilder,
    name: &TableName,
    sql: &mut String,
) {
    let TableName(schema, name) = name;
    if let Some(SchemaName(database, schema)) = schema {
        if let Some(DatabaseName(database)) = database {
            iden(builder, database, sql);
            sql.push('.');
        }
        iden(builder, schema, sql);
        sql.push('.');
    }
    iden(builder, name, sql);
}

/// Writes a table name; aliases are dropped and other references are
/// replaced by [`NOT_A_TABLE`].
pub(in crate::dsl) fn table(builder: &PostgresQueryBuilder, table: &TableRef, sql: &mut String) {
    match table {
        TableRef::Table(name, _alias) => qualified_name(builder, name, sql),
        _ => sql.push_str(NOT_A_TABLE),
    }
}

/// Writes a type name: as written when plain, else as a quoted identifier.
pub(in crate::dsl) fn sql_type(
    builder: &PostgresQueryBuilder,
    sql_type: &SqlType,
    sql: &mut String,
) {
    if sql_type.is_plain() {
        sql.push_str(sql_type.as_str());
    } else {
        iden(builder, &DynIden::from(sql_type.as_str().to_owned()), sql);
    }
}

/// Writes `(<type>, …)`.
pub(in crate::dsl) fn signature(
    builder: &PostgresQueryBuilder,
    types: &[SqlType],
    sql: &mut String,
) {
    sql.push('(');
    list(types, sql, |ty, sql| sql_type(builder, ty, sql));
    sql.push(')');
}

/// Writes `(<expr>)` with values inlined.
pub(in crate::dsl) fn parenthesized_expr(
    builder: &PostgresQueryBuilder,
    expr: &Expr,
    sql: &mut String,
) {
    sql.push('(');
    builder.prepare_expr(expr, sql);
    sql.push(')');
}

/// Writes `"role"` or `PUBLIC`, comma-separated.
pub(in crate::dsl) fn grantees(
    builder: &PostgresQueryBuilder,
    grantees: &[Grantee],
    sql: &mut String,
) {
    list(grantees, sql, |grantee, sql| match grantee {
        Grantee::Role(role) => iden(builder, role, sql),
        Grantee::Public => sql.push_str("PUBLIC"),
    });
}

/// Writes `SELECT, INSERT`.
pub(in crate::dsl) fn privileges(privileges: &[Privilege], sql: &mut String) {
    list(privileges, sql, |privilege, sql| {
        sql.push_str(privilege.as_str());
    });
}

/// Writes a string literal: `'…'` with `'` doubled, or `E'…'` with `\`
/// doubled as well when the text has a backslash, so the result means the
/// same whatever `standard_conforming_strings` is set to.
pub(in crate::dsl) fn literal(text: &str, sql: &mut String) {
    let has_backslash = text.contains('\\');
    sql.push_str(if has_backslash { "E'" } else { "'" });
    for c in text.chars() {
        match c {
            '\'' => sql.push_str("''"),
            '\\' => sql.push_str("\\\\"),
            c => sql.push(c),
        }
    }
    sql.push('\'');
}

/// Writes `DO <body>`, the body dollar-quoted (`$tenantry$`, or a tag it does not contain).
pub(crate) fn do_block(body: &str, sql: &mut String) {
    sql.push_str("DO ");
    dollar_quoted(body, sql);
}

/// Writes `body` dollar-quoted with a tag that cannot end it early.
pub(in crate::dsl) fn dollar_quoted(body: &str, sql: &mut String) {
    let tag = dollar_tag(body);
    sql.push_str(&tag);
    sql.push_str(body);
    sql.push_str(&tag);
}

/// `$tenantry$`, or `$tenantry_<n>$` for the smallest `n` that works.
///
/// A tag works when its first occurrence in `body + tag` is the closing tag
/// itself; that also rules out bodies ending in a prefix of the tag.
fn dollar_tag(body: &str) -> String {
    let mut candidate = 0_usize;
    loop {
        let tag = match candidate {
            0 => "$tenantry$".to_owned(),
            n => format!("$tenantry_{n}$"),
        };
        let quoted = format!("{body}{tag}");
        if quoted.find(&tag) == Some(body.len()) {
            return tag;
        }
        candidate += 1;
    }
}
