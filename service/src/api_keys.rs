//! A tenant's API keys: issue, list, revoke, rotate, expire.
//!
//! A key is `tk_<prefix>_<secret>`: a public prefix of 6 random bytes (12 hex characters) to
//! find it by, and a secret of 32 random bytes (64 hex characters). Only the SHA-256 of the
//! whole string is stored; the string itself is returned once, by [`issue`] and [`rotate`].
//! Every change is admin-only and writes an audit entry in the same transaction. A key id of
//! another tenant is [`ServiceError::NotFound`], exactly like an id that does not exist.

use chrono::{DateTime, Utc};
use entity::api_keys;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, QueryFilter, QueryOrder};
use tracing::Instrument;
use uuid::Uuid;

use crate::audit;
use crate::auth::{KEY_PREFIX, hash_key};
use crate::error::{Result, ServiceError};
use crate::tx::TenantTx;

/// The longest accepted key name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The most scopes a key may have.
pub const MAX_SCOPES: usize = 32;
/// The longest accepted scope, in characters.
pub const MAX_SCOPE_CHARS: usize = 64;

/// What to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// A name for people (1..=200 characters).
    pub name: String,
    /// Scopes: lowercase tokens of `a-z 0-9 _ . : -` (at most 32, each at most 64 characters).
    /// `admin` makes the key act as an admin; exactly `["read"]` makes it read-only.
    pub scopes: Vec<String>,
    /// When the key stops working (must be in the future), if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Requests per minute (at most `i32::MAX`), if the key has its own limit.
    pub rate_limit_per_minute: Option<u32>,
    /// Units per month (at most `i64::MAX`), if the key has its own quota.
    pub monthly_quota: Option<u64>,
}

/// A key as listed: never its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyInfo {
    /// The key's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its public prefix (the 12 hex characters after `tk_`).
    pub prefix: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its own rate limit, if any.
    pub rate_limit_per_minute: Option<u32>,
    /// Its own monthly quota, if any.
    pub monthly_quota: Option<u64>,
    /// When it stops (or stopped) working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (written at most once per `last_used_interval`).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

impl From<api_keys::Model> for ApiKeyInfo {
    fn from(m: api_keys::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            prefix: m.prefix,
            scopes: m.scopes,
            rate_limit_per_minute: m.rate_limit_per_minute.and_then(|v| u32::try_from(v).ok()),
            monthly_quota: m.monthly_quota.and_then(|v| u64::try_from(v).ok()),
            expires_at: m.expires_at.map(|t| t.with_timezone(&Utc)),
            revoked_at: m.revoked_at.map(|t| t.with_timezone(&Utc)),
            last_used_at: m.last_used_at.map(|t| t.with_timezone(&Utc)),
            created_at: m.created_at.with_timezone(&Utc),
        }
    }
}

/// A freshly issued key: its description and, this once, the key itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IssuedApiKey {
    /// The key as [`list`] shows it.
    pub key: ApiKeyInfo,
    /// `tk_<prefix>_<secret>`: shown once, never stored.
    pub secret: String,
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| {
        tracing::error!(error = %e, "the operating system's random source failed");
        ServiceError::Unavailable("no random source".into())
    })?;
    Ok(buf)
}

fn valid_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

/// A checked [`NewApiKey`]: the values as stored.
struct Checked {
    name: String,
    scopes: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit_per_minute: Option<i32>,
    monthly_quota: Option<i64>,
}

fn check(new: NewApiKey) -> Result<Checked> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ServiceError::invalid(
            "name",
            format!("required, at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if new.scopes.len() > MAX_SCOPES {
        return Err(ServiceError::invalid(
            "scopes",
            format!("at most {MAX_SCOPES}"),
        ));
    }
    let mut scopes: Vec<String> = Vec::with_capacity(new.scopes.len());
    for scope in new.scopes {
        if !valid_token(&scope, MAX_SCOPE_CHARS) {
            return Err(ServiceError::invalid(
                "scopes",
                format!("each a lowercase token of a-z 0-9 _ . : - (at most {MAX_SCOPE_CHARS})"),
            ));
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if let Some(at) = new.expires_at
        && at <= Utc::now()
    {
        return Err(ServiceError::invalid("expires_at", "must be in the future"));
    }
    let rate_limit_per_minute = new
        .rate_limit_per_minute
        .map(i32::try_from)
        .transpose()
        .map_err(|_| ServiceError::invalid("rate_limit_per_minute", "too large"))?;
    let monthly_quota = new
        .monthly_quota
        .map(i64::try_from)
        .transpose()
        .map_err(|_| ServiceError::invalid("monthly_quota", "too large"))?;
    Ok(Checked {
        name,
        scopes,
        expires_at: new.expires_at,
        rate_limit_per_minute,
        monthly_quota,
    })
}

async fn insert_key(tx: &TenantTx, key: Checked) -> Result<IssuedApiKey> {
    let prefix = hex(&random::<6>()?);
    let secret = format!("{KEY_PREFIX}{prefix}_{}", hex(&random::<32>()?));
    let row = api_keys::ActiveModel {
        name: ActiveValue::Set(key.name),
        prefix: ActiveValue::Set(prefix),
        secret_hash: ActiveValue::Set(hash_key(&secret).to_vec()),
        scopes: ActiveValue::Set(key.scopes),
        rate_limit_per_minute: ActiveValue::Set(key.rate_limit_per_minute),
        monthly_quota: ActiveValue::Set(key.monthly_quota),
        expires_at: ActiveValue::Set(key.expires_at.map(|t| t.fixed_offset())),
        created_by: ActiveValue::Set(tx.context().user_id()),
        ..Default::default()
    };
    let model = tx.insert(row).await?;
    Ok(IssuedApiKey {
        key: model.into(),
        secret,
    })
}

/// Issues a key (admins only). The returned `secret` is the only copy of the key.
pub async fn issue(tx: &TenantTx, new: NewApiKey) -> Result<IssuedApiKey> {
    async {
        tx.context().require_admin()?;
        let issued = insert_key(tx, check(new)?).await?;
        audit::record(
            tx,
            "api_key.issue",
            Some("api_key"),
            Some(issued.key.id.to_string()),
            serde_json::json!({
                "name": issued.key.name,
                "prefix": issued.key.prefix,
                "scopes": issued.key.scopes,
            }),
        )
        .await?;
        Ok(issued)
    }
    .instrument(tracing::info_span!("api_keys.issue", tenant_id = %tx.tenant_id()))
    .await
}

/// Every key of the tenant, oldest first, without hashes.
pub async fn list(tx: &TenantTx) -> Result<Vec<ApiKeyInfo>> {
    let rows = tx
        .select::<api_keys::Entity>()
        .order_by_asc(api_keys::Column::CreatedAt)
        .order_by_asc(api_keys::Column::Id)
        .all(tx.conn())
        .instrument(tracing::debug_span!("api_keys.list", tenant_id = %tx.tenant_id()))
        .await?;
    Ok(rows.into_iter().map(ApiKeyInfo::from).collect())
}

/// The key `key_id` of this tenant, locked for the rest of the transaction.
async fn locked(tx: &TenantTx, key_id: Uuid) -> Result<api_keys::Model> {
    use sea_orm::QuerySelect;
    tx.select::<api_keys::Entity>()
        .filter(api_keys::Column::Id.eq(key_id))
        .lock_exclusive()
        .one(tx.conn())
        .await?
        .ok_or(ServiceError::NotFound("api key"))
}

async fn revoke_locked(tx: &TenantTx, key: api_keys::Model) -> Result<ApiKeyInfo> {
    if key.revoked_at.is_some() {
        return Ok(key.into());
    }
    tx.update_many::<api_keys::Entity>()?
        .col_expr(api_keys::Column::RevokedAt, Expr::cust("now()"))
        .filter(api_keys::Column::Id.eq(key.id))
        .exec(tx.conn())
        .await?;
    Ok(tx.get::<api_keys::Entity>("api key", key.id).await?.into())
}

/// Revokes a key (admins only): it stops working on its next use. Revoking a revoked key
/// changes nothing and returns it as it is.
pub async fn revoke(tx: &TenantTx, key_id: Uuid) -> Result<ApiKeyInfo> {
    async {
        tx.context().require_admin()?;
        let key = locked(tx, key_id).await?;
        let already = key.revoked_at.is_some();
        let info = revoke_locked(tx, key).await?;
        audit::record(
            tx,
            "api_key.revoke",
            Some("api_key"),
            Some(key_id.to_string()),
            serde_json::json!({ "already_revoked": already }),
        )
        .await?;
        Ok(info)
    }
    .instrument(tracing::info_span!("api_keys.revoke", tenant_id = %tx.tenant_id(), %key_id))
    .await
}

/// Replaces a key (admins only), in one transaction: the old key is revoked and a new one
/// with the same name, scopes, limits and expiry is issued. A revoked or expired key cannot
/// be rotated ([`ServiceError::Conflict`]); issue a new one instead.
pub async fn rotate(tx: &TenantTx, key_id: Uuid) -> Result<IssuedApiKey> {
    async {
        tx.context().require_admin()?;
        let old = locked(tx, key_id).await?;
        if old.revoked_at.is_some() {
            return Err(ServiceError::Conflict("the api key is revoked".into()));
        }
        let expires_at = old.expires_at.map(|t| t.with_timezone(&Utc));
        if expires_at.is_some_and(|t| t <= Utc::now()) {
            return Err(ServiceError::Conflict("the api key has expired".into()));
        }
        let replacement = Checked {
            name: old.name.clone(),
            scopes: old.scopes.clone(),
            expires_at,
            rate_limit_per_minute: old.rate_limit_per_minute,
            monthly_quota: old.monthly_quota,
        };
        revoke_locked(tx, old).await?;
        let issued = insert_key(tx, replacement).await?;
        audit::record(
            tx,
            "api_key.rotate",
            Some("api_key"),
            Some(key_id.to_string()),
            serde_json::json!({ "replaced_by": issued.key.id, "prefix": issued.key.prefix }),
        )
        .await?;
        Ok(issued)
    }
    .instrument(tracing::info_span!("api_keys.rotate", tenant_id = %tx.tenant_id(), %key_id))
    .await
}

/// Sets when a key stops working (admins only): `at` may be now or in the past to stop it at
/// once, or later to give it an end. A revoked key stays revoked.
pub async fn expire(tx: &TenantTx, key_id: Uuid, at: DateTime<Utc>) -> Result<ApiKeyInfo> {
    async {
        tx.context().require_admin()?;
        let key = locked(tx, key_id).await?;
        tx.update_many::<api_keys::Entity>()?
            .col_expr(api_keys::Column::ExpiresAt, Expr::value(at.fixed_offset()))
            .filter(api_keys::Column::Id.eq(key.id))
            .exec(tx.conn())
            .await?;
        audit::record(
            tx,
            "api_key.expire",
            Some("api_key"),
            Some(key_id.to_string()),
            serde_json::json!({ "expires_at": at }),
        )
        .await?;
        Ok(tx.get::<api_keys::Entity>("api key", key_id).await?.into())
    }
    .instrument(tracing::info_span!("api_keys.expire", tenant_id = %tx.tenant_id(), %key_id))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_complete() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        let prefix = hex(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(prefix.len(), 12);
    }

    #[test]
    fn checks_new_keys() {
        let ok = NewApiKey {
            name: " ci ".into(),
            scopes: vec!["read".into(), "read".into(), "write".into()],
            expires_at: None,
            rate_limit_per_minute: Some(60),
            monthly_quota: Some(u64::MAX),
        };
        assert!(matches!(
            check(ok.clone()),
            Err(ServiceError::InvalidInput {
                field: "monthly_quota",
                ..
            })
        ));
        let checked = check(NewApiKey {
            monthly_quota: Some(10),
            ..ok.clone()
        })
        .ok()
        .map(|c| (c.name, c.scopes));
        assert_eq!(
            checked,
            Some(("ci".to_owned(), vec!["read".to_owned(), "write".to_owned()]))
        );
        for scopes in [
            vec!["Read".to_owned()],
            vec![String::new()],
            vec!["a b".into()],
        ] {
            assert!(
                check(NewApiKey {
                    scopes,
                    monthly_quota: None,
                    ..ok.clone()
                })
                .is_err()
            );
        }
    }
}
