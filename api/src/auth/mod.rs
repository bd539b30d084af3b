//! Authentication: who is calling, for which tenant.
//!
//! `Authorization: Bearer <credential>`. A credential starting with `tk_` is an API key
//! (the service's `authenticate_api_key`: unknown, revoked, expired keys and suspended tenants
//! are refused); anything else is an access token, verified (HS256, expiry) and then checked
//! against the membership (`member_context`), so leaving a tenant takes effect at once.
//!
//! [`require_tenant`] runs in front of every `/v1` route but login: it resolves the
//! credential into a [`Principal`], applies the API key's rate limit, its tenant's plan limit
//! (all keys of a tenant together) and the key's monthly quota, puts
//! the principal into the request, and, after the handler, meters the request as a `request`
//! usage event. Handlers take the [`Tenant`] extractor, which can only be built from that
//! principal: a handler that needs a tenant cannot forget to authenticate, and the tenant
//! always comes from the credential, never from a path or body field.

pub mod admin;
pub mod login_throttle;
pub mod meter;
pub mod password;
pub mod plans;
pub mod quota;
pub mod rate_limit;
pub mod token;

use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use service::{ServiceError, TenantContext};
use uuid::Uuid;

use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

/// The prefix of API-key credentials.
pub const API_KEY_PREFIX: &str = "tk_";

/// Credentials longer than this are refused before any work.
const MAX_CREDENTIAL_LEN: usize = 4096;

/// The API key behind a request, with its limits.
#[derive(Debug, Clone)]
pub struct KeyLimits {
    /// The key's id.
    pub key_id: Uuid,
    /// Requests per minute (`None`: the default).
    pub rate_limit_per_minute: Option<u32>,
    /// Units per calendar month (`None`: unlimited).
    pub monthly_quota: Option<u64>,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The tenant, actor and role, from the credential.
    pub context: TenantContext,
    /// Set when an API key authenticated the request.
    pub api_key: Option<KeyLimits>,
}

/// The authenticated tenant context of a request. Only [`require_tenant`] can provide it.
#[derive(Debug, Clone)]
pub struct Tenant(pub TenantContext);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .map(|p| Tenant(p.context.clone()))
            .ok_or_else(|| Problem::unauthenticated("a credential is required"))
    }
}

/// The credential of `Authorization: Bearer <credential>`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthenticated("send Authorization: Bearer <API key or token>"))?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is malformed"))?;
    let (scheme, credential) = value
        .split_once(' ')
        .ok_or_else(|| Problem::unauthenticated("the Authorization scheme must be Bearer"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Problem::unauthenticated(
            "the Authorization scheme must be Bearer",
        ));
    }
    let credential = credential.trim();
    if credential.is_empty() || credential.len() > MAX_CREDENTIAL_LEN {
        return Err(Problem::unauthenticated("the credential is malformed"));
    }
    Ok(credential)
}

/// Resolves a credential into a principal.
pub async fn authenticate(state: &AppState, credential: &str) -> Result<Principal, Problem> {
    if credential.starts_with(API_KEY_PREFIX) {
        let key = state.tenantry().authenticate_api_key(credential).await?;
        return Ok(Principal {
            context: key.context,
            api_key: Some(KeyLimits {
                key_id: key.key_id,
                rate_limit_per_minute: key.rate_limit_per_minute,
                monthly_quota: key.monthly_quota,
            }),
        });
    }
    let claims = state.tokens().verify(credential).map_err(|e| {
        tracing::debug!(error = %e, "token refused");
        Problem::unauthenticated("the access token is invalid or expired")
    })?;
    let context = state
        .tenantry()
        .member_context(claims.tid, claims.sub)
        .await
        .map_err(|e| match e {
            // Not (or no longer) a member, or the tenant is suspended: the token stops working.
            ServiceError::NotFound(_)
            | ServiceError::Forbidden(_)
            | ServiceError::Unauthenticated(_) => {
                Problem::unauthenticated("the access token no longer grants access to this tenant")
            }
            other => Problem::from(other),
        })?;
    Ok(Principal {
        context,
        api_key: None,
    })
}

/// Middleware in front of the tenant routes; see the module documentation.
pub async fn require_tenant(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let principal = match bearer(request.headers()) {
        Ok(credential) => match authenticate(&state, credential).await {
            Ok(p) => p,
            Err(problem) => return problem.into_response(),
        },
        Err(problem) => return problem.into_response(),
    };
    let tenant_id = principal.context.tenant_id();
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant_id));
    if let Some(key) = &principal.api_key {
        if let Err(wait) = state
            .rate_limits()
            .check(key.key_id, key.rate_limit_per_minute)
        {
            return Problem::new(ProblemKind::RateLimited)
                .detail("this API key's rate limit is exhausted; retry later")
                .retry_after(rate_limit::retry_after_secs(wait))
                .into_response();
        }
        if let Err(problem) = plans::admit_tenant(&state, &principal.context).await {
            return problem.into_response();
        }
        if let Some(quota) = key.monthly_quota
            && let Err(problem) = state
                .quotas()
                .admit(&state, &principal.context, key.key_id, quota)
                .await
        {
            return problem.into_response();
        }
    }
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| format!("{} {}", request.method(), p.as_str()));
    let metered = principal
        .api_key
        .is_some()
        .then(|| principal.context.clone());
    request.extensions_mut().insert(principal);
    let response = next.run(request).await;
    if let Some(ctx) = metered {
        meter::record_request(&state, &ctx, endpoint, started.elapsed(), response.status());
    }
    response
}
