//! SeaORM values in and out of tokio-postgres: the bind parameters of a statement built by
//! sea-query (`Values`), each with the PostgreSQL type it is declared as, and a result row as
//! the entity's model.
//!
//! Parameters are declared with the type SeaORM's own sqlx driver binds for the same value
//! (`String` as `text`, `Uuid` as `uuid`, ...), so a statement means the same on both paths.
//! Result columns are decoded by their PostgreSQL type into the `Value` variant SeaORM's models
//! expect (`timestamptz` as `DateTimeWithTimeZone`, `jsonb` as `Json`). A type outside that
//! list is an error naming the column, never a guess.

use entity::TenantScoped;
use sea_orm::sea_query::{ArrayType, Value};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use crate::error::{Result, ServiceError};

/// A bind parameter: the value as tokio-postgres encodes it, and its declared type.
pub(crate) type Param = (Box<dyn ToSql + Sync + Send>, Type);

fn boxed<T: ToSql + Sync + Send + 'static>(v: T, ty: Type) -> Param {
    (Box::new(v), ty)
}

/// The parameter for one sea-query value.
pub(crate) fn param(value: &Value) -> Result<Param> {
    Ok(match value.clone() {
        Value::Bool(v) => boxed(v, Type::BOOL),
        Value::TinyInt(v) => boxed(v.map(i16::from), Type::INT2),
        Value::SmallInt(v) => boxed(v, Type::INT2),
        Value::Int(v) => boxed(v, Type::INT4),
        Value::BigInt(v) => boxed(v, Type::INT8),
        Value::TinyUnsigned(v) => boxed(v.map(i16::from), Type::INT2),
        Value::SmallUnsigned(v) => boxed(v.map(i32::from), Type::INT4),
        Value::Unsigned(v) => boxed(v.map(i64::from), Type::INT8),
        Value::BigUnsigned(v) => {
            let v = v
                .map(i64::try_from)
                .transpose()
                .map_err(|_| ServiceError::invalid("input", "an integer is out of range"))?;
            boxed(v, Type::INT8)
        }
        Value::Float(v) => boxed(v, Type::FLOAT4),
        Value::Double(v) => boxed(v, Type::FLOAT8),
        Value::String(v) => boxed(v, Type::TEXT),
        Value::Char(v) => boxed(v.map(String::from), Type::TEXT),
        Value::Bytes(v) => boxed(v, Type::BYTEA),
        Value::Json(v) => boxed(v.map(|j| *j), Type::JSONB),
        Value::ChronoDate(v) => boxed(v, Type::DATE),
        Value::ChronoTime(v) => boxed(v, Type::TIME),
        Value::ChronoDateTime(v) => boxed(v, Type::TIMESTAMP),
        Value::ChronoDateTimeUtc(v) => boxed(v, Type::TIMESTAMPTZ),
        Value::ChronoDateTimeLocal(v) => boxed(v, Type::TIMESTAMPTZ),
        Value::ChronoDateTimeWithTimeZone(v) => boxed(v, Type::TIMESTAMPTZ),
        Value::Uuid(v) => boxed(v, Type::UUID),
        Value::Array(ty, items) => array_param(ty, items.map(|b| *b))?,
        other => {
            tracing::debug!(value = ?other, "no pipelined binding for this value");
            return Err(ServiceError::invalid(
                "statement",
                "a value of a type the one-round-trip path does not bind",
            ));
        }
    })
}

/// An array parameter (`text[]`, `uuid[]`, `int4[]`, `int8[]`, `bool[]`): its elements as
/// `Vec<Option<T>>`.
fn array_param(ty: ArrayType, items: Option<Vec<Value>>) -> Result<Param> {
    fn elements<T>(items: Option<Vec<Value>>) -> Result<Option<Vec<Option<T>>>>
    where
        Option<T>: sea_orm::sea_query::ValueType,
    {
        items
            .map(|v| {
                v.into_iter()
                    .map(|e| {
                        <Option<T> as sea_orm::sea_query::ValueType>::try_from(e).map_err(|_| {
                            ServiceError::invalid("statement", "an array element of another type")
                        })
                    })
                    .collect()
            })
            .transpose()
    }
    Ok(match ty {
        ArrayType::String => boxed(elements::<String>(items)?, Type::TEXT_ARRAY),
        ArrayType::Uuid => boxed(elements::<uuid::Uuid>(items)?, Type::UUID_ARRAY),
        ArrayType::Int => boxed(elements::<i32>(items)?, Type::INT4_ARRAY),
        ArrayType::BigInt => boxed(elements::<i64>(items)?, Type::INT8_ARRAY),
        ArrayType::Bool => boxed(elements::<bool>(items)?, Type::BOOL_ARRAY),
        _ => {
            return Err(ServiceError::invalid(
                "statement",
                "an array of a type the one-round-trip path does not bind",
            ));
        }
    })
}

/// All parameters of a statement, in order.
pub(crate) fn params(values: Option<&sea_orm::Values>) -> Result<Vec<Param>> {
    values.map_or(Ok(Vec::new()), |v| v.0.iter().map(param).collect())
}

/// A tokio-postgres row as `E`'s model ([`crate::rows::model`]). The row's columns must be
/// `E`'s, in `E`'s order and under their own names, as the pipelined select list and
/// `RETURNING` clause put them (`columns.rs`); anything else is refused, never matched up by
/// guessing.
pub(crate) fn model<E: TenantScoped>(row: &Row) -> Result<E::Model> {
    crate::rows::model::<E>(row).map_err(|unfit| {
        tracing::warn!(column = unfit.column, error = unfit.error, "{}", unfit.what);
        ServiceError::Unavailable(if unfit.undecodable {
            "a column of a type the one-round-trip path cannot read".into()
        } else {
            "a row does not fit its model".into()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_declared_as_sqlx_binds_them() {
        let cases = [
            (Value::from(uuid::Uuid::nil()), Type::UUID),
            (Value::from("x"), Type::TEXT),
            (Value::Uuid(None), Type::UUID),
            (Value::from(5_i64), Type::INT8),
            (Value::from(5_i32), Type::INT4),
            (Value::from(true), Type::BOOL),
            (Value::from(serde_json::json!({})), Type::JSONB),
            (Value::from(vec!["a".to_owned()]), Type::TEXT_ARRAY),
        ];
        for (value, ty) in cases {
            let (_, got) = param(&value).expect("bindable");
            assert_eq!(got, ty, "{value:?}");
        }
        assert!(param(&Value::BigUnsigned(Some(u64::MAX))).is_err());
    }
}
