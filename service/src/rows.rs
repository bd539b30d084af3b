//! A result row as an entity's model, read by position, from either driver the service runs
//! statements on (tokio-postgres for the pipelined path, sqlx for [`crate::TenantTx`]).
//!
//! SeaORM's `FromQueryResult` reads a model by column *name*: for each field it looks the name
//! up in the row (twice, on sqlx: once for the raw value, once to decode it), hashing the name
//! each time. For a page of rows that is most of what the client spends on a read after the
//! network. The statements the service builds itself select exactly the entity's columns in
//! the entity's order under their own names (`E::find()` does, and so do the pipelined select
//! list and `RETURNING` clause), so here each column is read at its position, checked against
//! the entity's column of that position by name, decoded by its PostgreSQL type into the
//! `Value` variant SeaORM's models expect, and set on an active model through SeaORM's own
//! conversion (`try_set`), which then becomes the model.
//!
//! A row that does not fit (another column list, a type outside the list below, a value its
//! field refuses) is [`Unfit`], never matched up by guessing: the pipelined path refuses it,
//! `TenantTx` reads that row by name as SeaORM would (`tenant_conn.rs`), so a column of a type
//! only SeaORM knows (`numeric`, `inet`, ...) still reads.

use entity::TenantScoped;
use sea_orm::sea_query::{ArrayType, Value};
use sea_orm::{ActiveModelTrait, IdenStatic, Iterable, ModelTrait, TryIntoModel};
use sqlx::Postgres;
use tokio_postgres::types::{FromSql, Type};

/// A Rust type both drivers decode a PostgreSQL value into.
pub(crate) trait Cell:
    for<'a> FromSql<'a> + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

impl<T> Cell for T where
    T: for<'a> FromSql<'a> + for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>
{
}

/// A result row, read by position.
pub(crate) trait Cells {
    /// How many columns the row has.
    fn width(&self) -> usize;
    /// The name of column `idx` (`idx < width()`).
    fn name(&self, idx: usize) -> &str;
    /// The type of column `idx`, when it is one of PostgreSQL's built-in types.
    fn pg_type(&self, idx: usize) -> Option<Type>;
    /// Column `idx` decoded as `T` (NULL as `None`).
    fn get<T: Cell>(&self, idx: usize) -> Result<Option<T>, String>;
}

impl Cells for tokio_postgres::Row {
    fn width(&self) -> usize {
        self.columns().len()
    }
    fn name(&self, idx: usize) -> &str {
        self.columns()[idx].name()
    }
    fn pg_type(&self, idx: usize) -> Option<Type> {
        Some(self.columns()[idx].type_().clone())
    }
    fn get<T: Cell>(&self, idx: usize) -> Result<Option<T>, String> {
        self.try_get(idx).map_err(|e| e.to_string())
    }
}

impl Cells for sqlx::postgres::PgRow {
    fn width(&self) -> usize {
        sqlx::Row::len(self)
    }
    fn name(&self, idx: usize) -> &str {
        sqlx::Column::name(&sqlx::Row::columns(self)[idx])
    }
    fn pg_type(&self, idx: usize) -> Option<Type> {
        let info = sqlx::Column::type_info(&sqlx::Row::columns(self)[idx]);
        info.oid().and_then(|oid| Type::from_oid(oid.0))
    }
    fn get<T: Cell>(&self, idx: usize) -> Result<Option<T>, String> {
        sqlx::Row::try_get(self, idx).map_err(|e| e.to_string())
    }
}

/// Why a row does not make its entity's model.
#[derive(Debug)]
pub(crate) struct Unfit {
    /// What does not fit.
    pub what: &'static str,
    /// The column, where one is to blame.
    pub column: String,
    /// The driver's or SeaORM's own words.
    pub error: String,
    /// Whether the driver could not decode the column (its type is outside the list), rather
    /// than the row or a value not fitting the model.
    pub undecodable: bool,
}

impl Unfit {
    fn new(what: &'static str, column: &str, error: impl std::fmt::Display) -> Self {
        Self {
            what,
            column: column.to_owned(),
            error: error.to_string(),
            undecodable: false,
        }
    }
}

/// An array column as SeaORM's `Value::Array` of `ty`, each element wrapped by `wrap`.
fn array<T: Cell>(
    row: &impl Cells,
    idx: usize,
    ty: ArrayType,
    wrap: fn(Option<T>) -> Value,
) -> Result<Value, String>
where
    Vec<Option<T>>: Cell,
{
    let items: Option<Vec<Option<T>>> = row.get(idx)?;
    Ok(Value::Array(
        ty,
        items.map(|v| Box::new(v.into_iter().map(wrap).collect())),
    ))
}

/// One column of `row` as the `Value` SeaORM's models read.
fn column_value(row: &impl Cells, idx: usize) -> Result<Value, String> {
    Ok(match row.pg_type(idx) {
        Some(Type::BOOL) => Value::Bool(row.get(idx)?),
        Some(Type::INT2) => Value::SmallInt(row.get(idx)?),
        Some(Type::INT4) => Value::Int(row.get(idx)?),
        Some(Type::INT8) => Value::BigInt(row.get(idx)?),
        Some(Type::FLOAT4) => Value::Float(row.get(idx)?),
        Some(Type::FLOAT8) => Value::Double(row.get(idx)?),
        Some(Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME) => {
            Value::String(row.get(idx)?)
        }
        Some(Type::BYTEA) => Value::Bytes(row.get(idx)?),
        Some(Type::UUID) => Value::Uuid(row.get(idx)?),
        Some(Type::JSON | Type::JSONB) => {
            Value::Json(row.get::<serde_json::Value>(idx)?.map(Box::new))
        }
        Some(Type::DATE) => Value::ChronoDate(row.get(idx)?),
        Some(Type::TIME) => Value::ChronoTime(row.get(idx)?),
        Some(Type::TIMESTAMP) => Value::ChronoDateTime(row.get(idx)?),
        Some(Type::TIMESTAMPTZ) => Value::ChronoDateTimeWithTimeZone(row.get(idx)?),
        Some(Type::TEXT_ARRAY | Type::VARCHAR_ARRAY) => {
            array(row, idx, ArrayType::String, Value::String)?
        }
        Some(Type::UUID_ARRAY) => array(row, idx, ArrayType::Uuid, Value::Uuid)?,
        Some(Type::INT4_ARRAY) => array(row, idx, ArrayType::Int, Value::Int)?,
        Some(Type::INT8_ARRAY) => array(row, idx, ArrayType::BigInt, Value::BigInt)?,
        Some(Type::BOOL_ARRAY) => array(row, idx, ArrayType::Bool, Value::Bool)?,
        // `citext` (the users' e-mail) and other text-like types read as text; the driver
        // refuses any other type here with a type error, which the caller reports.
        _ => Value::String(row.get(idx)?),
    })
}

/// Sets `col` to `value`; a `timestamptz` the field declines as `DateTimeWithTimeZone` is
/// offered as `DateTimeUtc` (the other type SeaORM maps it to) before giving up.
///
/// An array is set under `catch_unwind`: sea-query's conversion of `Vec<T>` checks only the
/// array's element type and then unwraps each element's own conversion, so an element the
/// field's type refuses (a label a `Vec<MyEnum>` does not know, written by a newer release or
/// by hand) panics inside it. Caught, it is a value that does not fit, like any other: the
/// caller reads the row by name (SeaORM's error) or refuses it. The active model is dropped
/// with the error. (A build with `panic = "abort"` still aborts there, as in any dependency.)
fn set<A: ActiveModelTrait>(
    active: &mut A,
    col: <A::Entity as sea_orm::EntityTrait>::Column,
    value: Value,
) -> Result<(), String> {
    let offered = match &value {
        Value::ChronoDateTimeWithTimeZone(v) => Some(*v),
        _ => None,
    };
    let result = if matches!(value, Value::Array(..)) {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| active.try_set(col, value)))
            .unwrap_or_else(|_| {
                Err(sea_orm::DbErr::Type(
                    "an array element its field refuses".into(),
                ))
            })
    } else {
        active.try_set(col, value)
    };
    match (result, offered) {
        (Err(_), Some(v)) => active.try_set(
            col,
            Value::ChronoDateTimeUtc(v.map(|d| d.with_timezone(&chrono::Utc))),
        ),
        (result, _) => result,
    }
    .map_err(|e| e.to_string())
}

/// `row` as `E`'s model. The row's columns must be `E`'s, in `E`'s order and under their own
/// names; anything else is [`Unfit`].
pub(crate) fn model<E: TenantScoped>(row: &impl Cells) -> Result<E::Model, Unfit> {
    let width = row.width();
    if width != E::Column::iter().count() {
        return Err(Unfit::new(
            "a row has other columns than its entity",
            "",
            width,
        ));
    }
    let mut active = <E::ActiveModel as ActiveModelTrait>::default();
    for (idx, col) in E::Column::iter().enumerate() {
        let name = row.name(idx);
        if name != col.as_str() {
            return Err(Unfit::new(
                "a row's column is not its entity's",
                name,
                col.as_str(),
            ));
        }
        let value = column_value(row, idx).map_err(|e| Unfit {
            undecodable: true,
            ..Unfit::new("a column of a type not read by position", name, e)
        })?;
        set(&mut active, col, value)
            .map_err(|e| Unfit::new("a value does not fit its field", name, e))?;
    }
    active
        .try_into_model()
        .map_err(|e| Unfit::new("a row does not make a model", "", e))
}

/// `model`, which must be `tenant`'s: the statement that read it filtered by the tenant, and row
/// level security did too, so a row of another tenant here is a bug in both, refused (logged as
/// an error, answered as unavailable) rather than returned.
pub(crate) fn of_tenant<E: TenantScoped>(
    tenant: uuid::Uuid,
    model: E::Model,
) -> crate::error::Result<E::Model> {
    if model.get(E::tenant_column()) != Value::Uuid(Some(tenant)) {
        tracing::error!("a row read for a tenant is not the tenant's");
        return Err(crate::error::ServiceError::Unavailable(
            "a row does not fit its model".into(),
        ));
    }
    Ok(model)
}
