//! Metered usage: recording usage events for the current tenant and summarising them.
//!
//! Every function takes a [`TenantTx`], so the events written and read are always the
//! transaction's tenant's: the tenant comes from the context (never from the input), each
//! query is filtered by `tenant_id`, and row level security holds the same line underneath.
//!
//! Periods are calendar days and months **in UTC** (`date_trunc(unit, occurred_at, 'UTC')`),
//! whatever the session's time zone.
//!
//! Each event is bounded ([`MAX_QUANTITY`], [`MAX_TOKENS`], [`MAX_OCR_PAGES`],
//! [`MAX_AUDIO_SECONDS`], [`MAX_LATENCY_MS`]), but sums of many events (or of rows written
//! before the bounds existed) can still exceed a `bigint`: they are added up as `numeric` and
//! **saturate** at `i64::MAX` (audio seconds at `1e308`) rather than failing the query.

use chrono::{DateTime, Utc};
use entity::api_keys;
use entity::usage_events;
use sea_orm::sea_query::{Expr, ExprTrait, Func, SimpleExpr};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, EntityTrait, FromQueryResult, QueryFilter,
    QueryTrait,
};
use sea_orm::{QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::tx::TenantTx;

/// The longest accepted `kind`, in characters.
pub const MAX_KIND_CHARS: usize = 64;

/// The longest accepted `endpoint`, in characters.
pub const MAX_ENDPOINT_CHARS: usize = 2048;

/// The most units one event may carry (10^12).
pub const MAX_QUANTITY: i64 = 1_000_000_000_000;
/// The most input or output tokens one event may carry (10^12).
pub const MAX_TOKENS: i64 = 1_000_000_000_000;
/// The most OCR pages one event may carry.
pub const MAX_OCR_PAGES: i32 = 1_000_000;
/// The most seconds of audio one event may carry (10^9, about 31 years).
pub const MAX_AUDIO_SECONDS: f64 = 1e9;
/// The longest latency one event may report: a day, in milliseconds.
pub const MAX_LATENCY_MS: i32 = 86_400_000;

/// One usage event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEventInput {
    /// What was used, e.g. `request`, `transcription` (1..=64 characters).
    pub kind: String,
    /// How many units (0..=[`MAX_QUANTITY`]).
    pub quantity: i64,
    /// Input tokens (0..=[`MAX_TOKENS`]).
    pub tokens_in: i64,
    /// Output tokens (0..=[`MAX_TOKENS`]).
    pub tokens_out: i64,
    /// Seconds of audio (finite, 0..=[`MAX_AUDIO_SECONDS`]).
    pub audio_seconds: f64,
    /// Pages read by OCR (0..=[`MAX_OCR_PAGES`]).
    pub ocr_pages: i32,
    /// How long the request took, in milliseconds, if measured (0..=[`MAX_LATENCY_MS`]).
    pub latency_ms: Option<i32>,
    /// The endpoint called, if any (at most 2048 characters).
    pub endpoint: Option<String>,
    /// Free-form details: a JSON object (`null` is stored as `{}`).
    pub metadata: serde_json::Value,
}

impl UsageEventInput {
    /// `quantity` units of `kind`, everything else zero or absent.
    pub fn new(kind: impl Into<String>, quantity: i64) -> Self {
        Self {
            kind: kind.into(),
            quantity,
            tokens_in: 0,
            tokens_out: 0,
            audio_seconds: 0.0,
            ocr_pages: 0,
            latency_ms: None,
            endpoint: None,
            metadata: serde_json::Value::Object(Default::default()),
        }
    }

    /// Checks every field; the error names the first offending one.
    pub fn validate(&self) -> Result<()> {
        let kind_chars = self.kind.chars().count();
        if self.kind.trim().is_empty() {
            return Err(ServiceError::invalid("kind", "must not be empty"));
        }
        if kind_chars > MAX_KIND_CHARS {
            return Err(ServiceError::invalid(
                "kind",
                format!("must be at most {MAX_KIND_CHARS} characters"),
            ));
        }
        for (field, value, max) in [
            ("quantity", self.quantity, MAX_QUANTITY),
            ("tokens_in", self.tokens_in, MAX_TOKENS),
            ("tokens_out", self.tokens_out, MAX_TOKENS),
            (
                "ocr_pages",
                i64::from(self.ocr_pages),
                i64::from(MAX_OCR_PAGES),
            ),
            (
                "latency_ms",
                self.latency_ms.map(i64::from).unwrap_or(0),
                i64::from(MAX_LATENCY_MS),
            ),
        ] {
            if value < 0 {
                return Err(ServiceError::invalid(field, "must not be negative"));
            }
            if value > max {
                return Err(ServiceError::invalid(
                    field,
                    format!("must be at most {max}"),
                ));
            }
        }
        if !self.audio_seconds.is_finite()
            || self.audio_seconds < 0.0
            || self.audio_seconds > MAX_AUDIO_SECONDS
        {
            return Err(ServiceError::invalid(
                "audio_seconds",
                format!("must be a finite number between 0 and {MAX_AUDIO_SECONDS}"),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && endpoint.chars().count() > MAX_ENDPOINT_CHARS
        {
            return Err(ServiceError::invalid(
                "endpoint",
                format!("must be at most {MAX_ENDPOINT_CHARS} characters"),
            ));
        }
        if !(self.metadata.is_object() || matches!(self.metadata, serde_json::Value::Null)) {
            return Err(ServiceError::invalid("metadata", "must be a JSON object"));
        }
        Ok(())
    }
}

/// The length of a summary period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// Calendar days (UTC).
    Day,
    /// Calendar months (UTC).
    Month,
}

impl Period {
    /// The `date_trunc` unit as an SQL literal. Rendered inline (it comes from this enum, never
    /// from input) so that the select list and the GROUP BY carry the identical expression.
    fn unit_literal(self) -> &'static str {
        match self {
            Self::Day => "'day'",
            Self::Month => "'month'",
        }
    }
}

/// The usage of one kind in one period.
#[derive(Debug, Clone, PartialEq, FromQueryResult, serde::Serialize)]
pub struct UsageSummaryRow {
    /// The start of the period (midnight UTC of the day, or of the month's first day).
    pub period_start: DateTime<Utc>,
    /// What was used.
    pub kind: String,
    /// How many events.
    pub events: i64,
    /// Units, summed (saturating at `i64::MAX`).
    pub quantity: i64,
    /// Input tokens, summed (saturating at `i64::MAX`).
    pub tokens_in: i64,
    /// Output tokens, summed (saturating at `i64::MAX`).
    pub tokens_out: i64,
    /// Seconds of audio, summed (saturating at `1e308`).
    pub audio_seconds: f64,
    /// OCR pages, summed (saturating at `i64::MAX`).
    pub ocr_pages: i64,
    /// Mean latency of the events that measured one; `None` when none did.
    pub avg_latency_ms: Option<f64>,
}

/// Where a sum of audio seconds saturates. Not `f64::MAX`: PostgreSQL turns a `float8` into
/// `numeric` with 15 significant digits, and `f64::MAX` so rounded no longer fits a `float8`.
const MAX_AUDIO_SUM: f64 = 1e308;

/// `sum(column)` as `numeric` (exact, it cannot overflow; 0 when there are no rows),
/// saturated at `i64::MAX` and cast to `bigint`. The `coalesce` is inside: `least` ignores
/// NULLs, so an empty sum would otherwise saturate.
fn saturating_sum(column: usage_events::Column) -> SimpleExpr {
    let sum = Expr::col(column).cast_as("bigint").sum().cast_as("numeric");
    Expr::from(Func::least([
        Expr::from(Func::coalesce([sum, Expr::val(0i64).cast_as("numeric")])),
        Expr::val(i64::MAX).cast_as("numeric"),
    ]))
    .cast_as("bigint")
}

/// One event of a batch: the input and the API key it is attributed to (the key that made the
/// request, taken from its authenticated context by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct MeteredEvent {
    /// The key the event counts towards, if any.
    pub api_key_id: Option<Uuid>,
    /// What was used.
    pub input: UsageEventInput,
}

/// The row of one event for the transaction's tenant (validated first).
fn event_row(
    tx: &TenantTx,
    api_key_id: Option<Uuid>,
    input: UsageEventInput,
) -> Result<usage_events::ActiveModel> {
    input.validate()?;
    let metadata = if matches!(input.metadata, serde_json::Value::Null) {
        serde_json::Value::Object(Default::default())
    } else {
        input.metadata
    };
    Ok(usage_events::ActiveModel {
        tenant_id: ActiveValue::Set(tx.tenant_id()),
        id: ActiveValue::NotSet,
        api_key_id: ActiveValue::Set(api_key_id),
        kind: ActiveValue::Set(input.kind),
        quantity: ActiveValue::Set(input.quantity),
        tokens_in: ActiveValue::Set(input.tokens_in),
        tokens_out: ActiveValue::Set(input.tokens_out),
        audio_seconds: ActiveValue::Set(input.audio_seconds),
        ocr_pages: ActiveValue::Set(input.ocr_pages),
        latency_ms: ActiveValue::Set(input.latency_ms),
        endpoint: ActiveValue::Set(input.endpoint),
        metadata: ActiveValue::Set(metadata),
        occurred_at: ActiveValue::NotSet,
        created_at: ActiveValue::NotSet,
    })
}

/// Events written per `INSERT` statement of [`record_batch`] (bounded by the protocol's 65,535
/// bind parameters: 12 columns per row).
pub const BATCH_ROWS: usize = 1000;

/// Records many events of the transaction's tenant with multi-row inserts; returns how many.
///
/// Only background work (an [`crate::Actor::System`] context, such as the API's meter) may
/// attribute events to keys it names; a request's own context records through [`record`].
/// Every event is validated before anything is written: one invalid event refuses the batch
/// with [`ServiceError::InvalidInput`]. The database checks that each key belongs to the
/// tenant (the composite foreign key), and row level security that every row is the tenant's.
pub async fn record_batch(tx: &TenantTx, events: Vec<MeteredEvent>) -> Result<u64> {
    if !matches!(tx.context().actor(), crate::Actor::System { .. }) {
        return Err(ServiceError::Forbidden(
            "only background work records batches of usage".into(),
        ));
    }
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        rows.push(event_row(tx, e.api_key_id, e.input)?);
    }
    let n = rows.len() as u64;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(BATCH_ROWS).collect();
        usage_events::Entity::insert_many(chunk)
            .exec_without_returning(tx.conn())
            .await?;
    }
    Ok(n)
}

/// Records one usage event for the transaction's tenant and returns its id.
///
/// The tenant comes from the transaction, and when the actor is an API key, the event carries
/// that key's id. Recording is metering rather than a change to the tenant's data, so any
/// role may record (viewers' requests are metered too). Invalid input is refused with
/// [`ServiceError::InvalidInput`] naming the field, before anything is written.
pub async fn record(tx: &TenantTx, input: UsageEventInput) -> Result<Uuid> {
    let row = event_row(tx, tx.context().api_key_id(), input)?;
    let inserted = row.insert(tx.conn()).await?;
    Ok(inserted.id)
}

/// The tenant's usage with `from <= occurred_at < to`, grouped by period (UTC days or months)
/// and kind, ordered by period then kind.
///
/// [`ServiceError::InvalidInput`] naming `to` when `to` is not after `from`.
pub async fn summary(
    tx: &TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    period: Period,
) -> Result<Vec<UsageSummaryRow>> {
    use usage_events::Column;
    if to <= from {
        return Err(ServiceError::invalid("to", "must be after from"));
    }
    let period_start = || {
        Expr::from(
            Func::cust("date_trunc")
                .arg(Expr::cust(period.unit_literal()))
                .arg(Expr::col(Column::OccurredAt))
                .arg(Expr::cust("'UTC'")),
        )
    };
    let rows = tx
        .select::<usage_events::Entity>()
        .select_only()
        .expr_as(period_start(), "period_start")
        .column(Column::Kind)
        .expr_as(Expr::col(Column::Id).count(), "events")
        .expr_as(saturating_sum(Column::Quantity), "quantity")
        .expr_as(saturating_sum(Column::TokensIn), "tokens_in")
        .expr_as(saturating_sum(Column::TokensOut), "tokens_out")
        // A float8 sum raises an error on overflow: add up as numeric, cap at MAX_AUDIO_SUM.
        .expr_as(
            Expr::from(Func::least([
                Expr::from(Func::coalesce([
                    Expr::col(Column::AudioSeconds).cast_as("numeric").sum(),
                    Expr::val(0i64).cast_as("numeric"),
                ])),
                Expr::val(MAX_AUDIO_SUM).cast_as("numeric"),
            ]))
            .cast_as("double precision"),
            "audio_seconds",
        )
        .expr_as(saturating_sum(Column::OcrPages), "ocr_pages")
        .expr_as(
            Expr::col(Column::LatencyMs)
                .avg()
                .cast_as("double precision"),
            "avg_latency_ms",
        )
        .filter(Column::OccurredAt.gte(from))
        .filter(Column::OccurredAt.lt(to))
        .group_by(period_start())
        .group_by(Column::Kind)
        .order_by_asc(period_start())
        .order_by_asc(Column::Kind)
        .into_model::<UsageSummaryRow>()
        .all(tx.conn())
        .await?;
    Ok(rows)
}

/// This calendar month's events of the tenant (UTC, up to the transaction's start), summing
/// `quantity` (saturating at `i64::MAX`).
fn this_month(tx: &TenantTx) -> sea_orm::Select<usage_events::Entity> {
    use usage_events::Column;
    let month_start = Expr::from(
        Func::cust("date_trunc")
            .arg(Expr::cust("'month'"))
            .arg(Expr::cust("now()"))
            .arg(Expr::cust("'UTC'")),
    );
    tx.select::<usage_events::Entity>()
        .select_only()
        .expr_as(saturating_sum(Column::Quantity), "quantity")
        .filter(Expr::col(Column::OccurredAt).gte(month_start))
}

/// The quantity the tenant used this calendar month (UTC, up to the transaction's start),
/// optionally only through one API key (that key's id alone: see [`month_to_date_of_lineage`]
/// for what a quota counts). Saturates at `i64::MAX`.
pub async fn month_to_date(tx: &TenantTx, api_key_id: Option<Uuid>) -> Result<i64> {
    let mut query = this_month(tx);
    if let Some(key) = api_key_id {
        query = query.filter(usage_events::Column::ApiKeyId.eq(key));
    }
    let total = query.into_tuple::<i64>().one(tx.conn()).await?;
    Ok(total.unwrap_or(0))
}

/// The quantity used this calendar month through the *lineage* of the API key `api_key_id`:
/// every key of the tenant with the same name, revoked ones included. This is what a key's
/// monthly quota is checked against.
///
/// Rotation revokes a key and issues a replacement with a new id but the same name (and
/// scopes, limits, expiry), and nothing else links the two (no schema change), so the name is
/// the lineage: a rotated key does not start the month again at zero. The price is that
/// distinct keys a tenant gives the same name share one count (each compares it with its own
/// quota); give keys that should be metered apart different names. A key id of another tenant,
/// or no such key, counts 0. Saturates at `i64::MAX`.
pub async fn month_to_date_of_lineage(tx: &TenantTx, api_key_id: Uuid) -> Result<i64> {
    use api_keys::Column as K;
    // Both subqueries start from `TenantTx::select`, so they are filtered by the tenant too.
    let name = tx
        .select::<api_keys::Entity>()
        .select_only()
        .column(K::Name)
        .filter(K::Id.eq(api_key_id))
        .into_query();
    let lineage = tx
        .select::<api_keys::Entity>()
        .select_only()
        .column(K::Id)
        .filter(K::Name.in_subquery(name))
        .into_query();
    let total = this_month(tx)
        .filter(usage_events::Column::ApiKeyId.in_subquery(lineage))
        .into_tuple::<i64>()
        .one(tx.conn())
        .await?;
    Ok(total.unwrap_or(0))
}
