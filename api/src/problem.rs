//! Errors as `application/problem+json` documents (RFC 9457).
//!
//! Handlers and extractors return a [`Problem`]; its response carries the rendered
//! [`ProblemDocument`] in an extension, and the [`finish_problems`] middleware, which knows the
//! request id, re-renders it with `request_id` filled in. Error responses that did not come
//! from a `Problem` (axum's 404 and 405, tower-http's 413 and timeout) are turned into problem
//! documents by the same middleware, so every 4xx/5xx the server sends has one shape.
//!
//! A problem never carries SQL text, constraint names or another tenant's values: service
//! errors are already classified ([`service::ServiceError`]), and the `Unavailable` kind, whose
//! message may describe our infrastructure, is replaced by a generic sentence (the detail is
//! logged).

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use service::ServiceError;
use utoipa::ToSchema;

use crate::request_id::REQUEST_ID_HEADER;

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every problem type URI starts with this.
pub const PROBLEM_BASE: &str = "https://tenantry.dev/problems/";

/// Detail strings are cut to this many characters (they may quote the client's input).
const MAX_DETAIL_CHARS: usize = 400;

/// The kinds of problem the API reports; each has a stable type URI, a title and a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// 400: the request is malformed (syntax, path or query parameters, headers).
    BadRequest,
    /// 401: no valid credential.
    Unauthenticated,
    /// 403: authenticated, but not allowed.
    Forbidden,
    /// 404: no such resource (for this tenant) or no such route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: conflicts with existing data.
    Conflict,
    /// 413: the body exceeds the limit.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: well-formed but invalid input; `errors` names the fields.
    ValidationFailed,
    /// 429: the API key's rate limit is exhausted; see `Retry-After`.
    RateLimited,
    /// 429: the API key's monthly quota is used up.
    QuotaExceeded,
    /// 503: the request took longer than the server's timeout.
    Timeout,
    /// 503: a dependency (the database) is unavailable.
    Unavailable,
    /// 500: a bug; the request id finds it in the logs.
    Internal,
}

impl ProblemKind {
    /// The last segment of the type URI.
    pub fn slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload-too-large",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::ValidationFailed => "validation-failed",
            Self::RateLimited => "rate-limited",
            Self::QuotaExceeded => "quota-exceeded",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The short, human-readable summary (the same for every occurrence).
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "The request is malformed",
            Self::Unauthenticated => "Authentication required",
            Self::Forbidden => "Not allowed",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict => "Conflict",
            Self::PayloadTooLarge => "Request body too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::ValidationFailed => "Invalid input",
            Self::RateLimited => "Rate limit exceeded",
            Self::QuotaExceeded => "Monthly quota exceeded",
            Self::Timeout => "The request timed out",
            Self::Unavailable => "Service unavailable",
            Self::Internal => "Internal error",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited | Self::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The type URI.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.slug())
    }

    /// Every kind, for the OpenAPI description.
    pub const ALL: [ProblemKind; 14] = [
        Self::BadRequest,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Conflict,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::ValidationFailed,
        Self::RateLimited,
        Self::QuotaExceeded,
        Self::Timeout,
        Self::Unavailable,
        Self::Internal,
    ];
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field, as a path into the body (`name`, `scopes[2]`), or a parameter's name.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An RFC 9457 problem document, as sent with `Content-Type: application/problem+json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "https://tenantry.dev/problems/not-found",
    "title": "Not found",
    "status": 404,
    "detail": "project not found",
    "request_id": "7f1f6a3e-2b1c-4a51-9d0e-8e4f7a0d9c11"
}))]
pub struct ProblemDocument {
    /// A stable URI naming the kind of problem (`https://tenantry.dev/problems/<kind>`).
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request's `x-request-id`, to find it in the server's logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The invalid fields, for `validation-failed` and `bad-request`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error response. Build one from a [`ProblemKind`] or a [`ServiceError`].
#[derive(Debug, Clone)]
pub struct Problem {
    kind: ProblemKind,
    detail: Option<String>,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
}

impl Problem {
    /// A problem of `kind` without detail.
    pub fn new(kind: ProblemKind) -> Self {
        Self {
            kind,
            detail: None,
            errors: Vec::new(),
            retry_after_secs: None,
        }
    }

    /// Adds what went wrong this time (cut to a few hundred characters).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        self.detail = Some(if detail.chars().count() > MAX_DETAIL_CHARS {
            let mut cut: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
            cut.push('…');
            cut
        } else {
            detail
        });
        self
    }

    /// Names an invalid field.
    pub fn field(mut self, field: impl Into<String>, reason: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
        self
    }

    /// Sets `Retry-After` (seconds).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A 422 naming `field`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(ProblemKind::ValidationFailed)
            .detail(format!("invalid {field}: {reason}"))
            .field(field, reason)
    }

    /// A 404 for `what`.
    pub fn not_found(what: &str) -> Self {
        Self::new(ProblemKind::NotFound).detail(format!("{what} not found"))
    }

    /// A 401 with `detail`.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Unauthenticated).detail(detail)
    }

    /// A 400 with `detail`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::BadRequest).detail(detail)
    }

    /// The same problem as a 400 (for invalid query and path parameters).
    pub fn as_bad_request(mut self) -> Self {
        self.kind = ProblemKind::BadRequest;
        self
    }

    /// The kind.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The document this problem renders to (without a request id).
    pub fn document(&self) -> ProblemDocument {
        ProblemDocument {
            type_uri: self.kind.type_uri(),
            title: self.kind.title().to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            request_id: None,
            errors: self.errors.clone(),
        }
    }
}

impl From<ServiceError> for Problem {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => Problem::not_found(what),
            ServiceError::Forbidden(why) => Problem::new(ProblemKind::Forbidden).detail(why),
            ServiceError::Unauthenticated(why) => Problem::unauthenticated(why),
            ServiceError::Conflict(why) => Problem::new(ProblemKind::Conflict).detail(why),
            ServiceError::InvalidInput { field, reason } => Problem::invalid(field, reason),
            ServiceError::Unavailable(why) => {
                tracing::warn!(reason = %why, "service unavailable");
                Problem::new(ProblemKind::Unavailable)
                    .detail("the service is temporarily unavailable; retry later")
                    .retry_after(5)
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let doc = self.document();
        let mut response = render(&doc);
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.kind == ProblemKind::Unauthenticated {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tenantry\""),
            );
        }
        response.extensions_mut().insert(doc);
        response
    }
}

/// The response for a document: its status, the problem media type, the JSON body.
fn render(doc: &ProblemDocument) -> Response {
    let status = StatusCode::from_u16(doc.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(doc).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body,
    )
        .into_response()
}

/// The kind of a bare error response (one not built from a [`Problem`]).
fn kind_for_status(status: StatusCode) -> ProblemKind {
    match status {
        StatusCode::UNAUTHORIZED => ProblemKind::Unauthenticated,
        StatusCode::FORBIDDEN => ProblemKind::Forbidden,
        StatusCode::NOT_FOUND => ProblemKind::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ProblemKind::MethodNotAllowed,
        StatusCode::CONFLICT => ProblemKind::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemKind::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemKind::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ProblemKind::ValidationFailed,
        StatusCode::TOO_MANY_REQUESTS => ProblemKind::RateLimited,
        // Our own 503s are all `Problem`s; a bare one comes from the timeout layer.
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => ProblemKind::Timeout,
        s if s.is_client_error() => ProblemKind::BadRequest,
        _ => ProblemKind::Internal,
    }
}

/// Middleware: every 4xx/5xx response leaves as a problem document carrying the request id.
pub async fn finish_problems(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut doc = match response.extensions_mut().remove::<ProblemDocument>() {
        Some(doc) => doc,
        None => {
            let kind = kind_for_status(status);
            let detail = match kind {
                ProblemKind::NotFound => "no such route".to_owned(),
                ProblemKind::MethodNotAllowed => "the route does not accept this method".into(),
                ProblemKind::PayloadTooLarge => "the request body exceeds the limit".into(),
                ProblemKind::Timeout => "the request took too long; retry later".into(),
                _ => status.canonical_reason().unwrap_or("error").to_owned(),
            };
            tracing::debug!(%status, "bare error response turned into a problem");
            ProblemDocument {
                type_uri: kind.type_uri(),
                title: kind.title().to_owned(),
                status: status.as_u16(),
                detail: Some(detail),
                request_id: None,
                errors: Vec::new(),
            }
        }
    };
    doc.request_id = request_id;
    let (mut parts, _) = response.into_parts();
    let fresh = render(&doc);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        fresh_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static(PROBLEM_JSON)),
    );
    if status.is_server_error() && doc.status == 500 {
        tracing::error!(%status, "internal error");
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_map_to_statuses() {
        let cases = [
            (ServiceError::NotFound("project"), 404),
            (ServiceError::Forbidden("no".into()), 403),
            (ServiceError::Unauthenticated("revoked"), 401),
            (ServiceError::Conflict("dup".into()), 409),
            (ServiceError::invalid("name", "too long"), 422),
            (ServiceError::Unavailable("db at 10.0.0.1 down".into()), 503),
        ];
        for (err, status) in cases {
            let doc = Problem::from(err).document();
            assert_eq!(doc.status, status);
            assert!(doc.type_uri.starts_with(PROBLEM_BASE));
            assert!(!doc.detail.unwrap_or_default().contains("10.0.0.1"));
        }
        let doc = Problem::from(ServiceError::invalid("name", "too long")).document();
        assert_eq!(doc.errors[0].field, "name");
    }

    #[test]
    fn details_are_cut() {
        let doc = Problem::bad_request("x".repeat(5000)).document();
        assert!(doc.detail.unwrap().chars().count() <= MAX_DETAIL_CHARS + 1);
    }
}
