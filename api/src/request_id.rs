//! `x-request-id`: taken from the client when it is a sane token, generated otherwise, echoed on
//! every response and carried by the request's tracing span and problem documents.

use axum::extract::Request;
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

/// The header's name.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest client-supplied request id we keep.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The header as a [`HeaderName`].
pub fn header_name() -> HeaderName {
    HeaderName::from_static(REQUEST_ID_HEADER)
}

/// Generates request ids: random UUIDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        Uuid::new_v4().to_string().parse().ok().map(RequestId::new)
    }
}

/// Whether a client-supplied id is kept: 1 to 128 characters of letters, digits, `-`, `_`,
/// `.` and `:`. Anything else (control characters, log-injection attempts, megabyte ids) is
/// replaced by a generated one.
pub fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Request mapper: removes an unacceptable `x-request-id` (and duplicates), so the id layer
/// generates a fresh one.
pub async fn drop_unacceptable(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let values: Vec<_> = headers.get_all(REQUEST_ID_HEADER).iter().collect();
    let keep = values.len() == 1 && values[0].to_str().map(is_acceptable).unwrap_or(false);
    if !keep {
        headers.remove(REQUEST_ID_HEADER);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptable_ids() {
        assert!(is_acceptable("abc-123_x.y:z"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("a b"));
        assert!(!is_acceptable("line\nbreak"));
        assert!(!is_acceptable(&"a".repeat(129)));
    }
}
