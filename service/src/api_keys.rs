//! A tenant's API keys: issue, list, revoke, rotate, expire.
//!
//! A key is `tk_<prefix>_<secret>`: a public prefix of 6 random bytes (12 hex characters) to
//! find it by, and a secret of 32 random bytes (64 hex characters). Only the SHA-256 of the
//! whole string is stored; the string itself is returned once, by [`issue`] and [`rotate`].
//! Every change is admin-only and writes an audit entry in the same transaction. A key id of
//! another tenant is [`ServiceError::NotFound`], exactly like an id that does not exist.
//!
//! A key is attributed to the person behind it (`created_by`): the user who issued or rotated
//! it, or, when a key issued it, that key's own creator, so a key minted by a key still belongs
//! to a human. When that person leaves the tenant every key attributed to them is revoked, and
//! when they are demoted the keys that act with more than their new role are (see
//! [`crate::members::remove`] and [`crate::members::change_role`]). Issuing locks the creator's
//! membership row, so an issue racing a removal either commits first and is revoked by it, or
//! waits and is refused.
//!
//! The limits a tenant picks are bounded: at most [`MAX_RATE_LIMIT_PER_MINUTE`] requests a
//! minute, and a monthly quota of at least one unit. A quota counts the key's whole *lineage*
//! (every key of the tenant with the same name: rotation keeps the name), so rotating a key does
//! not reset what it used this month (see [`crate::usage::month_to_date_of_lineage`]).

use chrono::{DateTime, Utc};
use entity::{api_keys, tenant_users};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
use tracing::Instrument;
use uuid::Uuid;

use crate::audit;
use crate::auth::{KEY_PREFIX, hash_key, role_for_scopes};
use crate::context::{Actor, MemberRole};
use crate::error::{Result, ServiceError};
use crate::tx::TenantTx;

/// The longest accepted key name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The most scopes a key may have.
pub const MAX_SCOPES: usize = 32;
/// The longest accepted scope, in characters.
pub const MAX_SCOPE_CHARS: usize = 64;
/// The highest rate limit a tenant may give a key, in requests per minute (100 a second).
///
/// Limits are enforced per API process from memory, and every request admitted is metered by
/// a write, so a tenant-chosen limit is a claim on shared capacity: above this ceiling, ask the
/// operator (the server's default, `TENANTRY_DEFAULT_RATE_LIMIT_PER_MINUTE`, is not bounded by
/// it). Keys stored with a higher limit before the ceiling existed are clamped to it when
/// they authenticate.
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 6_000;

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
    /// Requests per minute (1..=[`MAX_RATE_LIMIT_PER_MINUTE`]), if the key has its own limit.
    pub rate_limit_per_minute: Option<u32>,
    /// Units per month (1..=`i64::MAX`), if the key has its own quota. The quota is shared
    /// with the key's lineage (the tenant's keys of the same name).
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
    /// The user the key is attributed to: who issued (or rotated) it, or the creator of the
    /// key that did; `None` when unknown (issued by a job, or by a key without a creator).
    /// Their removal revokes it, their demotion may (see [`crate::members`]).
    pub created_by: Option<Uuid>,
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
            created_by: m.created_by,
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
    let rate_limit_per_minute = match new.rate_limit_per_minute {
        None => None,
        Some(n @ 1..=MAX_RATE_LIMIT_PER_MINUTE) => Some(
            i32::try_from(n)
                .map_err(|_| ServiceError::invalid("rate_limit_per_minute", "too large"))?,
        ),
        Some(_) => {
            return Err(ServiceError::invalid(
                "rate_limit_per_minute",
                format!("between 1 and {MAX_RATE_LIMIT_PER_MINUTE} requests per minute"),
            ));
        }
    };
    let monthly_quota = match new.monthly_quota {
        None => None,
        Some(0) => {
            return Err(ServiceError::invalid(
                "monthly_quota",
                "must be at least 1 (omit it for no quota)",
            ));
        }
        Some(n) => Some(
            i64::try_from(n).map_err(|_| ServiceError::invalid("monthly_quota", "too large"))?,
        ),
    };
    Ok(Checked {
        name,
        scopes,
        expires_at: new.expires_at,
        rate_limit_per_minute,
        monthly_quota,
    })
}

/// The user a new key is attributed to, checked under a lock.
///
/// A user acting: that user. An API key acting: the user that key is attributed to (a key
/// minted by a key is revoked with its human), or nobody when that is unknown. A job: nobody.
///
/// The creator's membership row is read `FOR SHARE` and must still be an administrator's; an
/// acting key is then read again and must not be revoked. [`crate::members::remove`] and
/// [`crate::members::change_role`] lock that row `FOR UPDATE` before revoking the member's
/// keys, so a key being issued while its creator is removed or demoted either commits first
/// (and the removal, whose statements start after, revokes it) or waits and is refused here.
async fn creator(tx: &TenantTx) -> Result<Option<Uuid>> {
    let creator = match tx.context().actor() {
        Actor::User { user_id } => Some(*user_id),
        Actor::ApiKey { key_id, .. } => tx
            .find_by_id::<api_keys::Entity>(*key_id)
            .await?
            .and_then(|k| k.created_by),
        Actor::System { .. } => None,
    };
    let Some(user) = creator else {
        return Ok(None);
    };
    let membership = tx
        .select::<tenant_users::Entity>()
        .filter(tenant_users::Column::UserId.eq(user))
        .lock_shared()
        .one(tx.conn())
        .await?;
    let still_admin = match membership {
        Some(m) => MemberRole::parse(&m.role)?.can_administer(),
        None => false,
    };
    if !still_admin {
        return Err(ServiceError::Forbidden(
            "the key's creator is no longer an administrator of this tenant".into(),
        ));
    }
    if let Actor::ApiKey { key_id, .. } = tx.context().actor() {
        // Read again after the lock: a removal or demotion committed meanwhile revoked it.
        let acting = tx.find_by_id::<api_keys::Entity>(*key_id).await?;
        if acting.is_none_or(|k| k.revoked_at.is_some()) {
            return Err(ServiceError::Unauthenticated("api key revoked"));
        }
    }
    Ok(Some(user))
}

async fn insert_key(tx: &TenantTx, key: Checked) -> Result<IssuedApiKey> {
    let created_by = creator(tx).await?;
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
        created_by: ActiveValue::Set(created_by),
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

/// What happened to the user whose keys [`revoke_keys_of_creator`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CreatorChange {
    /// They left the tenant: every key attributed to them goes.
    Removed,
    /// Their role became this one: the keys that act with more go (admin keys below admin;
    /// writing keys too below member), the others stay.
    Demoted(MemberRole),
}

impl CreatorChange {
    fn reason(self) -> &'static str {
        match self {
            Self::Removed => "creator removed",
            Self::Demoted(_) => "creator demoted",
        }
    }

    /// Whether a key with these scopes must go.
    fn revokes(self, scopes: &[String]) -> bool {
        match self {
            Self::Removed => true,
            // Roles order strongest first: a key's role "less than" the new one outranks it.
            Self::Demoted(role) => role_for_scopes(scopes) < role,
        }
    }
}

/// Revokes, in the caller's transaction, the unrevoked keys of this tenant attributed to
/// `user_id` (`created_by`) that `change` calls for, and writes an `api_key.revoked` audit
/// entry for each (`details.reason`: `creator removed` or `creator demoted`). Returns their ids.
///
/// Expired keys are revoked too (an expiry can be moved later again; a revocation is final).
/// The caller must hold the member's `tenant_users` row `FOR UPDATE` (or have deleted it), so
/// no key of theirs can be issued concurrently (see [`creator`]).
pub(crate) async fn revoke_keys_of_creator(
    tx: &TenantTx,
    user_id: Uuid,
    change: CreatorChange,
) -> Result<Vec<Uuid>> {
    let keys = tx
        .select::<api_keys::Entity>()
        .filter(api_keys::Column::CreatedBy.eq(user_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .order_by_asc(api_keys::Column::Id)
        .lock_exclusive()
        .all(tx.conn())
        .await?;
    let doomed: Vec<api_keys::Model> = keys
        .into_iter()
        .filter(|k| change.revokes(&k.scopes))
        .collect();
    if doomed.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = doomed.iter().map(|k| k.id).collect();
    tx.update_many::<api_keys::Entity>()?
        .col_expr(api_keys::Column::RevokedAt, Expr::cust("now()"))
        .filter(api_keys::Column::Id.is_in(ids.iter().copied()))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(tx.conn())
        .await?;
    for key in &doomed {
        audit::record(
            tx,
            "api_key.revoked",
            Some("api_key"),
            Some(key.id.to_string()),
            serde_json::json!({
                "reason": change.reason(),
                "created_by": user_id,
                "name": key.name,
                "prefix": key.prefix,
                "scopes": key.scopes,
            }),
        )
        .await?;
    }
    Ok(ids)
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
    fn creator_changes_revoke_the_keys_that_outrank_the_new_role() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let (admin, writer, reader) = (s(&["admin", "read"]), s(&["read", "write"]), s(&["read"]));
        let revoked =
            |change: CreatorChange| [&admin, &writer, &reader].map(|scopes| change.revokes(scopes));
        assert_eq!(revoked(CreatorChange::Removed), [true, true, true]);
        assert_eq!(
            revoked(CreatorChange::Demoted(MemberRole::Admin)),
            [false, false, false]
        );
        assert_eq!(
            revoked(CreatorChange::Demoted(MemberRole::Member)),
            [true, false, false]
        );
        assert_eq!(
            revoked(CreatorChange::Demoted(MemberRole::Viewer)),
            [true, true, false]
        );
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
        let limits = |rate: Option<u32>, quota: Option<u64>| {
            check(NewApiKey {
                rate_limit_per_minute: rate,
                monthly_quota: quota,
                ..ok.clone()
            })
            .map(|c| (c.rate_limit_per_minute, c.monthly_quota))
        };
        assert!(matches!(
            limits(Some(6_000), Some(1)),
            Ok((Some(6_000), Some(1)))
        ));
        for (rate, quota, field) in [
            (
                Some(MAX_RATE_LIMIT_PER_MINUTE + 1),
                None,
                "rate_limit_per_minute",
            ),
            (Some(0), None, "rate_limit_per_minute"),
            (None, Some(0), "monthly_quota"),
        ] {
            assert!(
                matches!(limits(rate, quota), Err(ServiceError::InvalidInput { field: f, .. }) if f == field),
                "{rate:?} {quota:?}"
            );
        }
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
