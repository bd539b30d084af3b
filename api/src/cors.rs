//! CORS: off unless `TENANTRY_CORS_ORIGINS` names origins. Then those origins (exactly, no
//! wildcard) may call the API from a browser with a bearer credential; no cookies are involved,
//! so credentials mode stays off.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::request_id::REQUEST_ID_HEADER;

/// The layer for `origins`, or `None` (CORS off) when there are none.
pub fn layer(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(REQUEST_ID_HEADER),
            ])
            .expose_headers([
                HeaderName::from_static(REQUEST_ID_HEADER),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}
