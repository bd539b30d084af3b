//! Authentication: where a [`TenantContext`] comes from.
//!
//! * [`Tenantry::authenticate_api_key`]: a presented key `tk_<prefix>_<secret>` is hashed
//!   whole (SHA-256) and looked up through the SECURITY DEFINER `tenancy.api_key_lookup`, the
//!   only way to find a key before its tenant is known. The hash is compared again in constant
//!   time, then revocation, expiry and the tenant's status are checked, each refused with its
//!   own reason.
//! * [`Tenantry::member_context`]: a verified user (the caller checked a token) acting in a
//!   tenant; the membership and the tenant's status are read inside that tenant's context, so
//!   row level security answers the question, and a non-member learns nothing about the tenant.
//! * [`Tenantry::find_login`]: the sign-in lookup by e-mail, through the SECURITY DEFINER
//!   `tenancy.find_login` (the app cannot read users outside its tenant otherwise).
//!
//! Nothing here writes on every request: an API key's `last_used_at` is written at most once
//! per [`crate::TenantryConfig::last_used_interval`] per key, remembered in memory.

use std::sync::PoisonError;
use std::time::Instant;

use entity::{api_keys, tenant_users, tenants};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, Statement, Value,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument;
use uuid::Uuid;

use crate::context::{Actor, MemberRole, TenantContext};
use crate::error::{Result, ServiceError};
use crate::tenantry::Tenantry;
use crate::tx::TenantTx;

/// What every key starts with.
pub const KEY_PREFIX: &str = "tk_";
/// Hex characters of a key's public prefix (6 random bytes).
pub const PREFIX_HEX_CHARS: usize = 12;
/// Hex characters of a key's secret (32 random bytes).
pub const SECRET_HEX_CHARS: usize = 64;
/// The length of a well-formed key: `tk_` + prefix + `_` + secret.
pub const KEY_CHARS: usize = KEY_PREFIX.len() + PREFIX_HEX_CHARS + 1 + SECRET_HEX_CHARS;

/// How many keys' last-use instants are remembered before stale entries are dropped.
const LAST_USED_MAX_ENTRIES: usize = 100_000;

/// A hash no key has (compared against when the lookup finds nothing, so a miss costs the same
/// comparison as a hit).
const DUMMY_HASH: [u8; 32] = [0x5a; 32];

/// An authenticated API key: the context to run its requests in, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    /// The key's tenant, [`Actor::ApiKey`], and the role its scopes give.
    pub context: TenantContext,
    /// The key's id.
    pub key_id: Uuid,
    /// The key's scopes.
    pub scopes: Vec<String>,
    /// Requests per minute allowed, if the key has its own limit (at most
    /// [`crate::api_keys::MAX_RATE_LIMIT_PER_MINUTE`], whatever is stored).
    pub rate_limit_per_minute: Option<u32>,
    /// Units per month allowed, if the key has its own quota.
    pub monthly_quota: Option<u64>,
}

/// The role a key's scopes give: `admin` → [`MemberRole::Admin`], exactly `["read"]` →
/// [`MemberRole::Viewer`], anything else → [`MemberRole::Member`]. A key is never an owner.
pub fn role_for_scopes(scopes: &[String]) -> MemberRole {
    if scopes.iter().any(|s| s == "admin") {
        MemberRole::Admin
    } else if matches!(scopes, [only] if only == "read") {
        MemberRole::Viewer
    } else {
        MemberRole::Member
    }
}

/// SHA-256 of the whole presented key string: what `api_keys.secret_hash` stores.
pub fn hash_key(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The public prefix of a well-formed key `tk_<12 lowercase hex>_<64 lowercase hex>`, or
/// `None`. Never panics, whatever the input.
pub fn parse_key(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    if rest.len() != PREFIX_HEX_CHARS + 1 + SECRET_HEX_CHARS {
        return None;
    }
    let prefix = rest.get(..PREFIX_HEX_CHARS)?;
    let separator = rest.get(PREFIX_HEX_CHARS..=PREFIX_HEX_CHARS)?;
    let secret = rest.get(PREFIX_HEX_CHARS + 1..)?;
    if separator != "_" || !prefix.bytes().all(is_lower_hex) || !secret.bytes().all(is_lower_hex) {
        return None;
    }
    Some(prefix)
}

/// A row of `tenancy.api_key_lookup`, plus whether the key has expired by the database's clock.
#[derive(Debug, FromQueryResult)]
struct LookupRow {
    tenant_id: Uuid,
    key_id: Uuid,
    secret_hash: Vec<u8>,
    scopes: Vec<String>,
    rate_limit_per_minute: Option<i32>,
    monthly_quota: Option<i64>,
    expired: bool,
    revoked: bool,
    tenant_status: String,
}

/// Whether a tenant in this status may be used (by keys and members alike).
pub(crate) fn status_allows_use(status: &str) -> bool {
    matches!(status, "active" | "trial")
}

impl Tenantry {
    /// Authenticates a presented API key. Fails with [`ServiceError::Unauthenticated`] and one
    /// of the reasons `malformed api key`, `unknown api key`, `api key revoked`, `api key
    /// expired` or `tenant not active`; never panics on any input.
    pub async fn authenticate_api_key(&self, presented: &str) -> Result<ApiKeyPrincipal> {
        let span = tracing::info_span!(
            "authenticate_api_key",
            tenant_id = tracing::field::Empty,
            key_id = tracing::field::Empty
        );
        async {
            let prefix =
                parse_key(presented).ok_or(ServiceError::Unauthenticated("malformed api key"))?;
            let digest = hash_key(presented);
            let rows = LookupRow::find_by_statement(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT tenant_id, key_id, secret_hash, scopes, rate_limit_per_minute, \
                 monthly_quota, coalesce(expires_at <= statement_timestamp(), false) AS expired, \
                 revoked_at IS NOT NULL AS revoked, tenant_status \
                 FROM tenancy.api_key_lookup($1, $2)",
                [Value::from(prefix), Value::from(digest.to_vec())],
            ))
            .all(&self.app)
            .await?;
            let row = match rows.into_iter().next() {
                Some(row) if bool::from(row.secret_hash.as_slice().ct_eq(&digest)) => row,
                Some(_) => return Err(ServiceError::Unauthenticated("unknown api key")),
                None => {
                    std::hint::black_box(bool::from(digest.ct_eq(&DUMMY_HASH)));
                    return Err(ServiceError::Unauthenticated("unknown api key"));
                }
            };
            let span = tracing::Span::current();
            span.record("tenant_id", tracing::field::display(row.tenant_id));
            span.record("key_id", tracing::field::display(row.key_id));
            if row.revoked {
                return Err(ServiceError::Unauthenticated("api key revoked"));
            }
            if row.expired {
                return Err(ServiceError::Unauthenticated("api key expired"));
            }
            if !status_allows_use(&row.tenant_status) {
                return Err(ServiceError::Unauthenticated("tenant not active"));
            }
            let role = role_for_scopes(&row.scopes);
            let context = TenantContext::new(
                row.tenant_id,
                Actor::ApiKey {
                    key_id: row.key_id,
                    scopes: row.scopes.clone(),
                },
                role,
            );
            self.touch_last_used(row.tenant_id, row.key_id).await;
            Ok(ApiKeyPrincipal {
                context,
                key_id: row.key_id,
                scopes: row.scopes,
                // Clamped: keys stored before the ceiling existed get no more than it.
                rate_limit_per_minute: row
                    .rate_limit_per_minute
                    .and_then(|v| u32::try_from(v).ok())
                    .map(|v| v.min(crate::api_keys::MAX_RATE_LIMIT_PER_MINUTE)),
                monthly_quota: row.monthly_quota.and_then(|v| u64::try_from(v).ok()),
            })
        }
        .instrument(span)
        .await
    }

    /// Records that a key was used, at most once per `last_used_interval` per key. A failed
    /// write is logged and retried on a later use; it never fails the authentication.
    async fn touch_last_used(&self, tenant_id: Uuid, key_id: Uuid) {
        if !self.claim_last_used(key_id) {
            return;
        }
        let ctx = TenantContext::new(
            tenant_id,
            Actor::System {
                job: "api_key.last_used",
            },
            MemberRole::Member,
        );
        let written = async {
            let tx = TenantTx::begin(&self.app_pg, ctx).await?;
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::LastUsedAt, Expr::cust("now()"))
                .filter(api_keys::Column::TenantId.eq(tenant_id))
                .filter(api_keys::Column::Id.eq(key_id))
                .exec(tx.conn())
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(error) = written {
            tracing::warn!(%error, %key_id, "could not record the api key's last use");
            self.last_used
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key_id);
        }
    }

    /// Whether this use of `key_id` should be written (and if so, remembers it as written).
    fn claim_last_used(&self, key_id: Uuid) -> bool {
        let interval = self.config.last_used_interval;
        let now = Instant::now();
        let mut seen = self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = seen.get(&key_id)
            && now.duration_since(*at) < interval
        {
            return false;
        }
        if seen.len() >= LAST_USED_MAX_ENTRIES {
            seen.retain(|_, at| now.duration_since(*at) < interval);
        }
        seen.insert(key_id, now);
        true
    }

    /// The context of a verified user acting in a tenant: their membership's role, with
    /// [`Actor::User`]. A user who is not a member, or a tenant that does not exist, gives the
    /// same [`ServiceError::Forbidden`]; a member of a tenant that is neither active nor in
    /// trial gets [`ServiceError::Unauthenticated`] (`tenant not active`).
    pub async fn member_context(&self, tenant_id: Uuid, user_id: Uuid) -> Result<TenantContext> {
        async {
            // Read-only probe in the tenant's own context: RLS shows the membership and the
            // tenant row only there. The role is a placeholder until the membership is read.
            let probe = TenantContext::new(tenant_id, Actor::User { user_id }, MemberRole::Viewer);
            let tx = TenantTx::begin(&self.app_pg, probe).await?;
            let membership = tx
                .select::<tenant_users::Entity>()
                .filter(tenant_users::Column::UserId.eq(user_id))
                .one(tx.conn())
                .await?;
            let Some(membership) = membership else {
                tx.rollback().await?;
                return Err(ServiceError::Forbidden(
                    "not a member of this tenant".into(),
                ));
            };
            let tenant = tenants::Entity::find()
                .filter(tenants::Column::Id.eq(tenant_id))
                .one(tx.conn())
                .await?;
            tx.rollback().await?;
            match tenant {
                Some(t) if status_allows_use(&t.status) => {}
                Some(_) => return Err(ServiceError::Unauthenticated("tenant not active")),
                None => {
                    return Err(ServiceError::Forbidden(
                        "not a member of this tenant".into(),
                    ));
                }
            }
            let role = MemberRole::parse(&membership.role)?;
            Ok(TenantContext::new(tenant_id, Actor::User { user_id }, role))
        }
        .instrument(
            tracing::info_span!("member_context", tenant_id = %tenant_id, user_id = %user_id),
        )
        .await
    }

    /// The user signing in with `email` (compared case-insensitively): their id and password
    /// hash (`None` for users who sign in some other way), or `None` for an unknown address.
    pub async fn find_login(&self, email: &str) -> Result<Option<(Uuid, Option<String>)>> {
        let email = email.trim();
        if email.is_empty() || email.len() > crate::tenants::MAX_EMAIL_BYTES {
            return Err(ServiceError::invalid(
                "email",
                format!(
                    "required, at most {} bytes",
                    crate::tenants::MAX_EMAIL_BYTES
                ),
            ));
        }
        #[derive(FromQueryResult)]
        struct Login {
            user_id: Uuid,
            password_hash: Option<String>,
        }
        let row = Login::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT user_id, password_hash FROM tenancy.find_login(CAST($1 AS public.citext))",
            [Value::from(email)],
        ))
        .one(&self.app)
        .instrument(tracing::debug_span!("find_login"))
        .await?;
        Ok(row.map(|r| (r.user_id, r.password_hash)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "tk_0123456789ab_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_only_the_canonical_form() {
        assert_eq!(GOOD.len(), KEY_CHARS);
        assert_eq!(parse_key(GOOD), Some("0123456789ab"));
        for bad in [
            "",
            "tk_",
            "tk_0123456789ab_",
            &GOOD.to_uppercase(),
            &GOOD.replace("tk_", "tx_"),
            &GOOD[..GOOD.len() - 1],
            &format!("{GOOD}0"),
            &GOOD.replacen('_', "-", 2),
            &GOOD.replace('a', "g"),
            // Multi-byte characters where the separator would be: no slicing panic.
            "tk_0123456789aé0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
            "tk_ééééééééééééé_0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(parse_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_map_to_roles() {
        let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(role_for_scopes(&s(&["admin"])), MemberRole::Admin);
        assert_eq!(role_for_scopes(&s(&["read", "admin"])), MemberRole::Admin);
        assert_eq!(role_for_scopes(&s(&["read"])), MemberRole::Viewer);
        assert_eq!(role_for_scopes(&s(&["read", "write"])), MemberRole::Member);
        assert_eq!(role_for_scopes(&s(&[])), MemberRole::Member);
    }

    #[test]
    fn hashes_the_whole_key() {
        // FIPS 180-2's test vector.
        assert_eq!(
            hash_key("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 of \"abc\""
        );
        assert_ne!(hash_key(GOOD), hash_key(&GOOD.replace('f', "e")));
    }
}
