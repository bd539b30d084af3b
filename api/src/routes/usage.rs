//! `/v1/usage`: record metered usage and read it back summarised per day or month (UTC).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::Problem;
use crate::routes::{Items, check_json_object, check_text};
use crate::state::AppState;
use service::usage::{self, Period, UsageEventInput, UsageSummaryRow};

/// A usage event to record for the caller's tenant (and API key, when a key calls).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordUsage {
    /// What was used, e.g. `transcription` (1 to 64 characters).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub kind: String,
    /// Units (default 1, at least 0).
    #[serde(default = "one", deserialize_with = "crate::routes::whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub quantity: i64,
    /// Input tokens.
    #[serde(default, deserialize_with = "crate::routes::whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub tokens_in: i64,
    /// Output tokens.
    #[serde(default, deserialize_with = "crate::routes::whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub tokens_out: i64,
    /// Seconds of audio.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub audio_seconds: f64,
    /// Pages read by OCR.
    #[serde(default, deserialize_with = "crate::routes::whole::number")]
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub ocr_pages: i32,
    /// How long the work took, in milliseconds.
    #[serde(default, deserialize_with = "crate::routes::whole::optional")]
    #[schema(minimum = 0, maximum = 86_400_000)]
    pub latency_ms: Option<i32>,
    /// The endpoint or feature used (1 to 2048 characters).
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub endpoint: Option<String>,
    /// Free-form details (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

fn one() -> i64 {
    1
}

/// The id of a recorded event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recorded {
    /// The event's id.
    pub id: Uuid,
}

/// Days or months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeriodParam {
    /// Calendar days (UTC).
    #[default]
    Day,
    /// Calendar months (UTC).
    Month,
}

/// `GET /v1/usage/summary` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// Start, inclusive (RFC 3339; default 30 days before `to`).
    pub from: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339; default now).
    pub to: Option<DateTime<Utc>>,
    /// `day` (default) or `month`.
    #[param(inline)]
    pub period: Option<PeriodParam>,
}

/// Usage of one kind in one period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageRow {
    /// Start of the day or month (UTC).
    pub period_start: DateTime<Utc>,
    /// What was used.
    pub kind: String,
    /// Number of events.
    pub events: i64,
    /// Sum of units.
    pub quantity: i64,
    /// Sum of input tokens.
    pub tokens_in: i64,
    /// Sum of output tokens.
    pub tokens_out: i64,
    /// Sum of audio seconds.
    pub audio_seconds: f64,
    /// Sum of OCR pages.
    pub ocr_pages: i64,
    /// Mean latency, where measured.
    pub avg_latency_ms: Option<f64>,
}

impl From<UsageSummaryRow> for UsageRow {
    fn from(r: UsageSummaryRow) -> Self {
        Self {
            period_start: r.period_start,
            kind: r.kind,
            events: r.events,
            quantity: r.quantity,
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            audio_seconds: r.audio_seconds,
            ocr_pages: r.ocr_pages,
            avg_latency_ms: r.avg_latency_ms,
        }
    }
}

/// Records a usage event (any member or key).
#[utoipa::path(post, path = "/v1/usage", tag = "usage", security(("bearer" = [])),
    request_body = RecordUsage,
    responses((status = 201, description = "Recorded", body = Recorded)))]
pub async fn record(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiJson(body): ApiJson<RecordUsage>,
) -> Result<(StatusCode, Json<Recorded>), Problem> {
    check_text("kind", &body.kind, 1, usage::MAX_KIND_CHARS)?;
    if let Some(e) = &body.endpoint {
        check_text("endpoint", e, 1, usage::MAX_ENDPOINT_CHARS)?;
    }
    if let Some(m) = &body.metadata {
        check_json_object("metadata", m)?;
    }
    let mut event = UsageEventInput::new(body.kind.trim(), body.quantity);
    event.tokens_in = body.tokens_in;
    event.tokens_out = body.tokens_out;
    event.audio_seconds = body.audio_seconds;
    event.ocr_pages = body.ocr_pages;
    event.latency_ms = body.latency_ms;
    event.endpoint = body.endpoint;
    event.metadata = body.metadata.unwrap_or_else(|| serde_json::json!({}));
    let id = state
        .tenantry()
        .with_tenant(&ctx, async |tx| usage::record(tx, event).await)
        .await?;
    Ok((StatusCode::CREATED, Json(Recorded { id })))
}

/// The tenant's usage per period and kind.
#[utoipa::path(get, path = "/v1/usage/summary", tag = "usage", security(("bearer" = [])),
    params(SummaryQuery),
    responses((status = 200, description = "The summary", body = Items<UsageRow>)))]
pub async fn summary(
    State(state): State<AppState>,
    Tenant(ctx): Tenant,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> Result<Json<Items<UsageRow>>, Problem> {
    let to = q.to.unwrap_or_else(Utc::now);
    let from = q.from.unwrap_or(to - Duration::days(30));
    // An empty range has no usage; any range costs one index range scan and yields a row per
    // period that has events only, so neither needs refusing.
    if to <= from {
        return Ok(Json(Items::new(Vec::new())));
    }
    let period = match q.period.unwrap_or_default() {
        PeriodParam::Day => Period::Day,
        PeriodParam::Month => Period::Month,
    };
    let rows = state
        .tenantry()
        .with_tenant(&ctx, async |tx| usage::summary(tx, from, to, period).await)
        .await?;
    Ok(Json(Items::new(rows.into_iter().map(Into::into).collect())))
}
