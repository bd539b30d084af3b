//! Keyset pagination for the tenant's collections: newest first, `?limit=&cursor=`.
//!
//! A cursor is opaque to clients: URL-safe base64 of the last row's `created_at` (microseconds
//! since the epoch, 8 bytes big-endian) and `id` (16 bytes). The next page continues strictly
//! after that row in `(created_at DESC, id DESC)` order, so rows inserted meanwhile never shift
//! a page and each page costs one index range scan, however deep. A cursor carries no tenant:
//! it is only a position, and it is applied inside the caller's own tenant.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, FixedOffset, Utc};
use entity::TenantScoped;
use sea_orm::sea_query::IntoCondition;
use sea_orm::{ColumnTrait, Condition, Order, QueryFilter, QueryOrder, QuerySelect, Select};
use serde::Deserialize;
use service::{TenantContext, TenantTx, Tenantry};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::problem::Problem;

/// The default page size.
pub const DEFAULT_LIMIT: u64 = 50;
/// The largest page size.
pub const MAX_LIMIT: u64 = 200;

/// A position in a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last row returned.
    pub created_at: DateTime<Utc>,
    /// `id` of the last row returned.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form.
    pub fn encode(&self) -> String {
        let mut raw = [0u8; 24];
        raw[..8].copy_from_slice(&self.created_at.timestamp_micros().to_be_bytes());
        raw[8..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses the opaque form; `None` when it is not one of ours.
    ///
    /// Every string of 32 URL-safe base64 characters decodes (the document's `pattern`); a
    /// time outside what PostgreSQL's `timestamptz` holds is clamped to its range, which only
    /// moves the position to an end of the collection.
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(s).ok()?;
        let raw: [u8; 24] = raw.try_into().ok()?;
        let micros = i64::from_be_bytes(raw[..8].try_into().ok()?);
        let created_at = DateTime::<Utc>::from_timestamp_micros(micros)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            .max(earliest_timestamp());
        let id = Uuid::from_slice(&raw[8..]).ok()?;
        Some(Self { created_at, id })
    }
}

/// The earliest time PostgreSQL's `timestamptz` holds, rounded up to a whole year (4712 BC).
fn earliest_timestamp() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(-4711, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `?limit=&cursor=`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page (32 URL-safe base64 characters; empty: the first page).
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

impl PageParams {
    /// The validated limit and cursor.
    pub fn parse(&self) -> Result<(u64, Option<Cursor>), Problem> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(
                Problem::bad_request(format!("limit must be between 1 and {MAX_LIMIT}"))
                    .field("limit", format!("must be between 1 and {MAX_LIMIT}")),
            );
        }
        let cursor = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                Problem::bad_request("cursor is not a cursor this API issued")
                    .field("cursor", "malformed")
            })?),
        };
        Ok((limit, cursor))
    }
}

/// Where one page of a collection is and how to read it: the filter, the two key columns and
/// how a row gives them, the page size and the cursor.
pub struct PageOf<E: TenantScoped, K> {
    /// Rows to consider.
    pub filter: Condition,
    /// The entity's `created_at` column.
    pub created_col: E::Column,
    /// The entity's `id` column.
    pub id_col: E::Column,
    /// Reads `(created_at, id)` from a row.
    pub key: K,
    /// Rows per page.
    pub limit: u64,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

impl<E, K> PageOf<E, K>
where
    E: TenantScoped,
    K: Fn(&E::Model) -> (DateTime<FixedOffset>, Uuid),
{
    /// The page's rows, one more than the limit (to know whether a next page exists), as a
    /// filter, order and limit on `select` (which carries the tenant filter, or gets it from
    /// the one-round-trip path).
    fn query(&self, select: Select<E>) -> Select<E> {
        let mut query = select.filter(self.filter.clone());
        if let Some(c) = self.after {
            query = query.filter(
                Condition::any().add(self.created_col.lt(c.created_at)).add(
                    Condition::all()
                        .add(self.created_col.eq(c.created_at))
                        .add(self.id_col.lt(c.id)),
                ),
            );
        }
        query
            .order_by(self.created_col, Order::Desc)
            .order_by(self.id_col, Order::Desc)
            .limit(self.limit + 1)
    }

    /// The page and the next page's cursor, from the rows [`PageOf::query`] returned.
    fn finish(&self, mut rows: Vec<E::Model>) -> (Vec<E::Model>, Option<String>) {
        let next = if rows.len() as u64 > self.limit {
            rows.truncate(self.limit as usize);
            rows.last().map(|row| {
                let (created_at, id) = (self.key)(row);
                Cursor {
                    created_at: created_at.with_timezone(&Utc),
                    id,
                }
                .encode()
            })
        } else {
            None
        };
        (rows, next)
    }

    /// The page inside `tx`.
    pub async fn read(self, tx: &TenantTx) -> Result<(Vec<E::Model>, Option<String>), Problem> {
        let rows = self
            .query(tx.select::<E>())
            .all(tx.conn())
            .await
            .map_err(service::ServiceError::from)?;
        Ok(self.finish(rows))
    }

    /// The page as a unit of work of its own, in one round trip (`Tenantry::fetch_all`).
    pub async fn read_one_trip(
        self,
        tenantry: &Tenantry,
        ctx: &TenantContext,
    ) -> Result<(Vec<E::Model>, Option<String>), Problem> {
        let rows = tenantry.fetch_all(ctx, self.query(E::find())).await?;
        Ok(self.finish(rows))
    }
}

/// One page of `E`'s rows matching `filter`, newest first, and the cursor of the next page.
///
/// `created_col`/`id_col` are the entity's columns, `key` reads them from a row.
pub async fn page<E>(
    tx: &TenantTx,
    filter: impl IntoCondition,
    created_col: E::Column,
    id_col: E::Column,
    key: impl Fn(&E::Model) -> (DateTime<FixedOffset>, Uuid),
    limit: u64,
    after: Option<Cursor>,
) -> Result<(Vec<E::Model>, Option<String>), Problem>
where
    E: TenantScoped,
{
    PageOf::<E, _> {
        filter: filter.into_condition(),
        created_col,
        id_col,
        key,
        limit,
        after,
    }
    .read(tx)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            created_at: DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("nope"), None);
        assert_eq!(Cursor::decode("'; DROP TABLE projects; --"), None);
        assert_eq!(Cursor::decode(&"A".repeat(100)), None);
        // Every string the document's pattern allows is a position, clamped to PostgreSQL's range.
        for s in ["_".repeat(32), "A".repeat(32), "-".repeat(32)] {
            let c = Cursor::decode(&s).unwrap();
            assert!(c.created_at >= earliest_timestamp());
        }
    }

    #[test]
    fn limits() {
        let p = PageParams {
            limit: Some(0),
            cursor: None,
        };
        assert!(p.parse().is_err());
        let p = PageParams {
            limit: Some(201),
            cursor: None,
        };
        assert!(p.parse().is_err());
        let p = PageParams::default();
        assert_eq!(p.parse().unwrap().0, DEFAULT_LIMIT);
    }
}
