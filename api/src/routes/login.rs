//! `POST /v1/auth/login`: e-mail, password and tenant in, an access token out.
//!
//! In front of the password work, in this order: the failed-login throttle of the account and
//! of the client address ([`crate::auth::login_throttle`]: 429 with `Retry-After`, no database
//! read, no hashing), then a permit of the bounded password pool (none free: 503 with
//! `Retry-After` at once). Every refusal after that counts as a failure of both; a success
//! clears the account's failures.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use service::ServiceError;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::password::MAX_PASSWORD_CHARS;
use crate::auth::rate_limit::retry_after_secs;
use crate::client_addr::ClientAddr;
use crate::extract::ApiJson;
use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

/// The longest e-mail address accepted (RFC 5321's path limit).
const MAX_EMAIL_CHARS: usize = 320;

/// Signing in to one tenant.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's e-mail address (case-insensitive).
    #[schema(
        min_length = 1,
        max_length = 320,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    pub email: String,
    /// The user's password (1 to 1024 characters).
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
    /// The tenant to sign in to; the user must be a member.
    pub tenant_id: Uuid,
}

/// An access token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The token: send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The tenant it acts for.
    pub tenant_id: Uuid,
    /// The user it acts as.
    pub user_id: Uuid,
}

/// One answer for every failure, so the response does not tell which part was wrong.
fn refused() -> Problem {
    Problem::unauthenticated("the e-mail, password or tenant is wrong")
}

/// Signs in: verifies the password (argon2id) and the membership, and issues a token that
/// expires in an hour. Wrong e-mail, wrong password and "not a member" are indistinguishable.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong e-mail, password or tenant (one answer for all three)",
            content_type = "application/problem+json", body = crate::problem::ProblemDocument),
        (status = 429, description = "Too many failed sign-ins for this account or client address; see `Retry-After`",
            headers(("Retry-After" = u64, description = "Seconds to wait")), content_type = "application/problem+json", body = crate::problem::ProblemDocument),
        (status = 503, description = "Every password worker is busy (or the database is unavailable); see `Retry-After`",
            headers(("Retry-After" = u64, description = "Seconds to wait")), content_type = "application/problem+json", body = crate::problem::ProblemDocument),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    crate::routes::check_text("email", &body.email, 1, MAX_EMAIL_CHARS)?;
    let email = body.email.trim();
    if body.password.is_empty() || body.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(Problem::invalid(
            "password",
            format!("1 to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    let throttle = state.login_throttle();
    if let Err(wait) = throttle.check(email, addr) {
        // Debug, not info: a flood must not turn into a flood of log lines.
        tracing::debug!(client = %addr, "sign-in throttled");
        return Err(Problem::new(ProblemKind::RateLimited)
            .detail("too many failed sign-ins; retry later")
            .retry_after(retry_after_secs(wait)));
    }
    let Some(permit) = state.password_pool().try_acquire() else {
        return Err(Problem::new(ProblemKind::Unavailable)
            .detail("too many sign-ins in progress; retry shortly")
            .retry_after(1));
    };
    // An address longer than any stored one cannot exist: no lookup, the same dummy work.
    let lookup = if email.len() <= service::tenants::MAX_EMAIL_BYTES {
        state.tenantry().find_login(email).await?
    } else {
        None
    };
    let (user_id, stored) = match lookup {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let matches = permit.verify(body.password, stored).await;
    let Some(user_id) = user_id.filter(|_| matches) else {
        throttle.record_failure(email, addr);
        return Err(refused());
    };
    let context = match state
        .tenantry()
        .member_context(body.tenant_id, user_id)
        .await
    {
        Ok(ctx) => ctx,
        Err(ServiceError::Unavailable(why)) => return Err(ServiceError::Unavailable(why).into()),
        Err(_) => {
            throttle.record_failure(email, addr);
            return Err(refused());
        }
    };
    throttle.record_success(email);
    let token = state
        .tokens()
        .issue(user_id, context.tenant_id())
        .map_err(|e| {
            tracing::error!(error = %e, "could not sign a token");
            Problem::new(crate::problem::ProblemKind::Internal)
        })?;
    tracing::info!(%user_id, tenant_id = %context.tenant_id(), "signed in");
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: state.tokens().ttl().as_secs(),
        tenant_id: context.tenant_id(),
        user_id,
    }))
}
