//! Extractors whose rejections are problem documents, never axum's plain-text bodies.
//!
//! * [`ApiJson`]: a JSON body. Not JSON → 415; malformed JSON → 400; wrong types, missing or
//!   unknown fields (every body type is `deny_unknown_fields`) → 422 naming the field; too
//!   large → 413.
//! * [`ApiPath`]: path parameters; a malformed id → 400 naming the parameter.
//! * [`ApiQuery`]: query parameters; wrong types or unknown parameters → 400.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::problem::{Problem, ProblemKind};

/// A JSON request body of type `T`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json(content_type) {
            return Err(Problem::new(ProblemKind::UnsupportedMediaType)
                .detail("the body must be JSON (Content-Type: application/json)"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(ProblemKind::PayloadTooLarge).detail("the request body exceeds the limit")
    } else {
        Problem::bad_request("the request body could not be read")
    }
}

/// Parses a JSON body, naming the offending field on a data error.
///
/// Every body of this API is a JSON object: any other JSON value is a 422 (serde would
/// otherwise read an array as a struct's fields in order).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(Problem::invalid("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => v,
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            return Err(match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." { "body".to_owned() } else { path };
                    let reason = strip_position(&inner.to_string());
                    Problem::new(ProblemKind::ValidationFailed)
                        .detail(format!("invalid {field}: {reason}"))
                        .field(field, reason)
                }
                _ => Problem::bad_request(format!("malformed JSON: {inner}")),
            });
        }
    };
    de.end()
        .map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 12" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Path parameters of type `T`.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => {
                let names: Vec<String> = match RawPathParams::from_request_parts(parts, state).await
                {
                    Ok(raw) => raw.iter().map(|(k, _)| k.to_owned()).collect(),
                    Err(_) => Vec::new(),
                };
                Err(path_rejection(rejection, &names))
            }
        }
    }
}

fn path_rejection(rejection: PathRejection, names: &[String]) -> Problem {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(err) = rejection else {
        return Problem::new(ProblemKind::Internal).detail("path parameters unavailable");
    };
    let (name, expected) = match err.kind() {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => (Some(key.clone()), *expected_type),
        ErrorKind::ParseErrorAtIndex {
            index,
            expected_type,
            ..
        } => (names.get(*index).cloned(), *expected_type),
        ErrorKind::ParseError { expected_type, .. } => (names.first().cloned(), *expected_type),
        _ => (None, ""),
    };
    let name = name.unwrap_or_else(|| "path".to_owned());
    let reason = if expected.contains("Uuid") || expected.contains("uuid") {
        "must be a UUID".to_owned()
    } else {
        "is malformed".to_owned()
    };
    Problem::bad_request(format!("invalid path parameter {name}: {reason}")).field(name, reason)
}

/// Query parameters of type `T`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(err)) => Err(Problem::bad_request(
                format!("invalid query: {}", strip_prefix(&err.body_text())),
            )),
            Err(_) => Err(Problem::bad_request("invalid query")),
        }
    }
}

fn strip_prefix(text: &str) -> String {
    text.trim_start_matches("Failed to deserialize query string: ")
        .to_owned()
}

/// Deserializes a field that may be absent (outer `None`), `null` (`Some(None)`) or a value
/// (`Some(Some(v))`): what a PATCH of a nullable column needs. Use with `#[serde(default)]`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        #[serde(default, deserialize_with = "nullable")]
        due: Option<Option<u32>>,
    }

    #[test]
    fn json_errors() {
        let p = parse_json::<Body>(br#"{"name": 1}"#).unwrap_err();
        assert_eq!(p.kind(), ProblemKind::ValidationFailed);
        assert_eq!(p.document().errors[0].field, "name");
        let p = parse_json::<Body>(br#"{"name": "a", "tenant_id": "x"}"#).unwrap_err();
        assert_eq!(p.kind(), ProblemKind::ValidationFailed);
        let p = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert_eq!(p.kind(), ProblemKind::BadRequest);
        let p = parse_json::<Body>(br#"{"name": "a"} trailing"#).unwrap_err();
        assert_eq!(p.kind(), ProblemKind::BadRequest);
        let p = parse_json::<Body>(b"[]").unwrap_err();
        assert_eq!(p.kind(), ProblemKind::ValidationFailed);
        // serde reads a struct from an array of its fields; a body must be an object.
        let p = parse_json::<Body>(br#" ["a"]"#).unwrap_err();
        assert_eq!(p.kind(), ProblemKind::ValidationFailed);
        assert_eq!(p.document().errors[0].field, "body");
        let p = parse_json::<Body>(b"[").unwrap_err();
        assert_eq!(p.kind(), ProblemKind::BadRequest);
    }

    #[test]
    fn nullable_fields() {
        let b: Body = parse_json(br#"{"name": "a"}"#).unwrap();
        assert_eq!(b.due, None);
        let b: Body = parse_json(br#"{"name": "a", "due": null}"#).unwrap();
        assert_eq!(b.due, Some(None));
        let b: Body = parse_json(br#"{"name": "a", "due": 3}"#).unwrap();
        assert_eq!(b.due, Some(Some(3)));
    }

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("application/json; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
