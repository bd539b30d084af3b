//! The superadmin credential of `/admin`.
//!
//! `Authorization: Bearer <TENANTRY_ADMIN_TOKEN>`, compared in constant time, plus a required
//! `X-Tenantry-Reason` header, which becomes the reason of the audited superadmin transaction
//! (actor `admin-token`). Without a configured token every `/admin` route answers 404, as if
//! it did not exist.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::auth::bearer;
use crate::problem::{Problem, ProblemKind};
use crate::state::AppState;

/// The reason header.
pub const REASON_HEADER: &str = "x-tenantry-reason";

/// The actor recorded for requests authenticated by the admin token.
pub const ADMIN_ACTOR: &str = "admin-token";

/// The longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 2000;

/// An authenticated superadmin request and its stated reason.
#[derive(Debug, Clone)]
pub struct AdminGrant {
    /// Why (from `X-Tenantry-Reason`).
    pub reason: String,
}

impl<S: Send + Sync> FromRequestParts<S> for AdminGrant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AdminGrant>()
            .cloned()
            .ok_or_else(|| Problem::unauthenticated("the admin credential is required"))
    }
}

/// Middleware in front of `/admin`.
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config().admin_token.as_ref() else {
        return Problem::new(ProblemKind::NotFound)
            .detail("no such route")
            .into_response();
    };
    let presented = match bearer(request.headers()) {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    // Constant time over the bytes (a length mismatch is refused without comparing).
    if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Problem::unauthenticated("the admin credential is invalid").into_response();
    }
    let reason = match request.headers().get(REASON_HEADER) {
        None => None,
        Some(v) => std::str::from_utf8(v.as_bytes())
            .ok()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
    };
    let Some(reason) = reason else {
        return Problem::bad_request(
            "the X-Tenantry-Reason header is required: say why, it is audited",
        )
        .field("X-Tenantry-Reason", "required")
        .into_response();
    };
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return Problem::bad_request(
            "the X-Tenantry-Reason header is too long or has control characters",
        )
        .field("X-Tenantry-Reason", "at most 2000 printable characters")
        .into_response();
    }
    request.extensions_mut().insert(AdminGrant { reason });
    next.run(request).await
}
