//! The result columns of a pipelined statement: always the entity's own columns, by name, each
//! of a type tokio-postgres knows without asking the server.
//!
//! tokio-postgres resolves a result column's type OID that is not built in (`citext`, an enum,
//! a domain, an array of them) by preparing a *named* statement of its own (its "typeinfo"
//! query, cached on the client). Behind PgBouncer in transaction mode that named statement
//! stays on one server connection while the next unit may land on another ("prepared
//! statement does not exist"). So the pipelined path never lets such a type into a row
//! description: a column whose [`ColumnType`] is not one [`super::values`] decodes natively is
//! selected (and returned by an insert) as `CAST(col AS text)` under its own name, and SeaORM
//! reads it from the text as it does for enums. Bind parameters cannot trigger a lookup: they
//! are declared with built-in types only (`values.rs`), and the server casts them to the
//! column's type.
//!
//! The select list is replaced, not added to: a caller's `column_as` (a duplicate name, or an
//! expression claiming to be `tenant_id`) never reaches a model.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, ReturningClause};
use sea_orm::{ColumnTrait, ColumnType, EntityTrait, IdenStatic, Iterable, QuerySelect, Select};

/// Whether `values.rs` decodes a column of this type from its built-in OID.
fn native(ty: &ColumnType) -> bool {
    use ColumnType as C;
    match ty {
        C::Char(_)
        | C::String(_)
        | C::Text
        | C::Blob
        | C::TinyInteger
        | C::SmallInteger
        | C::Integer
        | C::BigInteger
        | C::TinyUnsigned
        | C::SmallUnsigned
        | C::Unsigned
        | C::BigUnsigned
        | C::Float
        | C::Double
        | C::DateTime
        | C::Timestamp
        | C::TimestampWithTimeZone
        | C::Time
        | C::Date
        | C::Boolean
        | C::Json
        | C::JsonBinary
        | C::Uuid
        | C::VarBinary(_)
        | C::Binary(_) => true,
        C::Array(inner) => matches!(
            &**inner,
            C::Char(_) | C::String(_) | C::Text | C::Uuid | C::Integer | C::BigInteger | C::Boolean
        ),
        _ => false,
    }
}

/// `col` as the pipelined path reads it: itself, or cast to `text` when its type is not
/// native.
fn read_as<C: ColumnTrait>(col: C) -> Expr {
    let qualified = Expr::col((col.entity_name(), col));
    if native(col.def().get_column_type()) {
        qualified
    } else {
        qualified.cast_as(Alias::new("text"))
    }
}

/// Whether the SQL of a select combines rows with `UNION`, `INTERSECT` or `EXCEPT`: the
/// service's tenant filter goes into the outer `WHERE`, which an arm of a set operation
/// escapes. sea-query keeps the arms private, but it always renders them with one of those
/// keywords, and every value is a bind parameter, so a word match over the whole text finds
/// every set operation. It errs on the side of refusal: the word in a custom expression, a
/// nested statement or an identifier (a column named `"union"`) is refused too.
pub(crate) fn has_set_operation(sql: &str) -> bool {
    // `$` is not a word character here: `$$x$$UNION` (a dollar-quoted string right before
    // the keyword) must still split off the keyword.
    sql.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| {
            ["union", "intersect", "except"]
                .iter()
                .any(|k| word.eq_ignore_ascii_case(k))
        })
}

/// `select` with its select list replaced by `E`'s columns, each read as [`read_as`] says.
pub(crate) fn entity_columns<E: EntityTrait>(select: Select<E>) -> Select<E> {
    E::Column::iter().fold(select.select_only(), |s, col| {
        s.column_as(read_as(col), col.as_str())
    })
}

/// `RETURNING` the entity's columns, each read as [`read_as`] says (PostgreSQL names a cast
/// column after the column it casts).
pub(crate) fn returning<E: EntityTrait>() -> ReturningClause {
    ReturningClause::Exprs(E::Column::iter().map(read_as).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DbBackend, QueryFilter, QueryTrait};

    #[test]
    fn a_citext_column_is_read_as_text_and_a_callers_columns_are_dropped() {
        let select = entity::users::Entity::find().column_as(Expr::cust("1"), "email");
        let sql = entity_columns(select).build(DbBackend::Postgres).sql;
        assert!(
            sql.contains(r#"CAST("users"."email" AS text) AS "email""#),
            "{sql}"
        );
        assert_eq!(sql.matches(r#"AS "email""#).count(), 1, "{sql}");
        assert!(sql.contains(r#""users"."id" AS "id""#), "{sql}");
        assert!(
            native(&ColumnType::Uuid) && !native(&ColumnType::Custom(Alias::new("citext").into()))
        );
    }

    #[test]
    fn a_union_is_found_and_a_plain_select_is_not() {
        use sea_orm::sea_query::UnionType;
        let sql = |s: sea_orm::Select<entity::users::Entity>| s.build(DbBackend::Postgres).sql;
        let plain = entity::users::Entity::find().filter(Expr::cust("unionized AND except_x"));
        assert!(!has_set_operation(&sql(plain)));
        for ty in [
            UnionType::All,
            UnionType::Distinct,
            UnionType::Intersect,
            UnionType::Except,
        ] {
            let mut union = entity::users::Entity::find();
            QueryTrait::query(&mut union).union(ty, entity::users::Entity::find().into_query());
            assert!(has_set_operation(&sql(union)), "{ty:?}");
        }
        let nested =
            entity::users::Entity::find().filter(Expr::cust("id IN (SELECT 1 union SELECT 2)"));
        assert!(has_set_operation(&sql(nested)));
    }

    #[test]
    fn a_custom_or_condition_stays_apart_from_the_tenant_filter() {
        let sql = entity::users::Entity::find()
            .filter(Expr::cust("a OR b"))
            .filter(Expr::cust("c"))
            .build(DbBackend::Postgres)
            .sql;
        assert!(sql.ends_with("WHERE (a OR b) AND (c)"), "{sql}");
    }
}
