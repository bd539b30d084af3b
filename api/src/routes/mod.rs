//! The route table, the router built from it, and the small helpers handlers share.
//!
//! [`ROUTES`] is the single list of every route: the router is built from it, and a test
//! checks that the OpenAPI document lists exactly these (method, path) pairs.

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod documents;
pub mod health;
pub mod login;
pub mod members;
pub mod project_child;
pub mod projects;
pub mod tasks;
pub mod tenant;
pub mod usage;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post};
use serde::{Deserialize, Serialize};
use service::{ServiceError, TenantTx};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::Problem;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the document, login).
    Public,
    /// A tenant credential: an API key or an access token ([`crate::auth::require_tenant`]).
    Tenant,
    /// The admin token and a reason ([`crate::auth::admin::require_admin`]).
    Admin,
}

/// An HTTP method of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET
    Get,
    /// POST
    Post,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Verb {
    /// The lowercase name, as OpenAPI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Post => "post",
            Self::Patch => "patch",
            Self::Delete => "delete",
        }
    }

    /// Whether requests carry a JSON body.
    pub fn has_body(self) -> bool {
        matches!(self, Self::Post | Self::Patch)
    }
}

/// One route.
pub struct Route {
    /// The method.
    pub verb: Verb,
    /// The path, with `{param}` placeholders (axum's and OpenAPI's syntax).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: fn() -> MethodRouter<AppState>,
}

macro_rules! route {
    ($verb:ident $method:ident $path:literal, $access:ident, $handler:path) => {
        Route {
            verb: Verb::$verb,
            path: $path,
            access: Access::$access,
            handler: || $method($handler),
        }
    };
}

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    route!(Get get "/healthz", Public, health::healthz),
    route!(Get get "/readyz", Public, health::readyz),
    route!(Get get "/openapi.json", Public, health::openapi_json),
    route!(Post post "/v1/auth/login", Public, login::login),
    route!(Get get "/v1/tenant", Tenant, tenant::get_tenant),
    route!(Patch patch "/v1/tenant", Tenant, tenant::patch_tenant),
    route!(Get get "/v1/members", Tenant, members::list),
    route!(Post post "/v1/members", Tenant, members::invite),
    route!(Patch patch "/v1/members/{user_id}", Tenant, members::change_role),
    route!(Delete delete "/v1/members/{user_id}", Tenant, members::remove),
    route!(Get get "/v1/api-keys", Tenant, api_keys::list),
    route!(Post post "/v1/api-keys", Tenant, api_keys::create),
    route!(Post post "/v1/api-keys/{id}/revoke", Tenant, api_keys::revoke),
    route!(Post post "/v1/api-keys/{id}/rotate", Tenant, api_keys::rotate),
    route!(Get get "/v1/projects", Tenant, projects::list),
    route!(Post post "/v1/projects", Tenant, projects::create),
    route!(Get get "/v1/projects/{id}", Tenant, projects::get_one),
    route!(Patch patch "/v1/projects/{id}", Tenant, projects::patch),
    route!(Delete delete "/v1/projects/{id}", Tenant, projects::delete),
    route!(Get get "/v1/projects/{project_id}/documents", Tenant, documents::list),
    route!(Post post "/v1/projects/{project_id}/documents", Tenant, documents::create),
    route!(Get get "/v1/projects/{project_id}/documents/{document_id}", Tenant, documents::get_one),
    route!(Patch patch "/v1/projects/{project_id}/documents/{document_id}", Tenant, documents::patch),
    route!(Delete delete "/v1/projects/{project_id}/documents/{document_id}", Tenant, documents::delete),
    route!(Get get "/v1/projects/{project_id}/tasks", Tenant, tasks::list),
    route!(Post post "/v1/projects/{project_id}/tasks", Tenant, tasks::create),
    route!(Get get "/v1/projects/{project_id}/tasks/{task_id}", Tenant, tasks::get_one),
    route!(Patch patch "/v1/projects/{project_id}/tasks/{task_id}", Tenant, tasks::patch),
    route!(Delete delete "/v1/projects/{project_id}/tasks/{task_id}", Tenant, tasks::delete),
    route!(Post post "/v1/usage", Tenant, usage::record),
    route!(Get get "/v1/usage/summary", Tenant, usage::summary),
    route!(Get get "/v1/audit-logs", Tenant, audit::list),
    route!(Get get "/admin/tenants", Admin, admin::list_tenants),
    route!(Post post "/admin/tenants", Admin, admin::create_tenant),
    route!(Post post "/admin/tenants/{id}/suspend", Admin, admin::suspend),
    route!(Post post "/admin/tenants/{id}/reactivate", Admin, admin::reactivate),
    route!(Post post "/admin/tenants/{id}/offboard", Admin, admin::offboard),
    route!(Post post "/admin/tenants/{id}/isolation", Admin, admin::set_isolation),
];

/// The routes of one access kind, as a router (without state or middleware).
pub fn routes_for(access: Access) -> Router<AppState> {
    ROUTES
        .iter()
        .filter(|r| r.access == access)
        .fold(Router::new(), |router, r| {
            router.route(r.path, (r.handler)())
        })
}

/// `{"items": [...]}`: a complete, small collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Items<T> {
    /// The elements.
    pub items: Vec<T>,
}

impl<T> Items<T> {
    /// Wraps `items`.
    pub fn new(items: Vec<T>) -> Self {
        Self { items }
    }
}

/// A page of a collection and where the next one starts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CursorPage<T> {
    /// The elements, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> CursorPage<T> {
    /// Wraps a page.
    pub fn new(items: Vec<T>, next_cursor: Option<String>) -> Self {
        Self { items, next_cursor }
    }

    /// A page of rows, each turned into its view.
    pub fn of<M: Into<T>>(rows: Vec<M>, next_cursor: Option<String>) -> Self {
        Self::new(rows.into_iter().map(Into::into).collect(), next_cursor)
    }
}

/// The `pattern` of single-line text fields in the document: not blank, no control
/// characters (what [`check_text`] enforces besides the length).
pub const LINE_PATTERN: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";

/// A short label (a scope, a tag): 1 to 64 characters, not blank, no control characters. Only
/// its schema is used; the value travels as a plain string.
pub struct Label;

impl utoipa::PartialSchema for Label {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(64))
            .pattern(Some(LINE_PATTERN))
            .into()
    }
}

impl ToSchema for Label {}

/// A single-line text field: `min..=max` characters, not blank, no control characters
/// (PostgreSQL refuses NUL in text, which would otherwise surface as a server error). The
/// document states the same rule (`minLength`, `maxLength`, a `pattern`), so lengths count the
/// characters as sent; handlers store the value trimmed.
pub fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), Problem> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Problem::invalid(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Problem::invalid(
            field,
            "must not contain control characters",
        ));
    }
    if value.trim().is_empty() {
        return Err(Problem::invalid(field, "must not be blank"));
    }
    Ok(())
}

/// A multi-line text field: at most `max` characters, line breaks and tabs allowed, no other
/// control characters.
pub fn check_long_text(field: &str, value: &str, max: usize) -> Result<(), Problem> {
    if value.chars().count() > max {
        return Err(Problem::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Problem::invalid(
            field,
            "must not contain control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

/// A JSON object without NUL characters anywhere (`jsonb` refuses `\u0000`).
pub fn check_json_object(field: &str, value: &serde_json::Value) -> Result<(), Problem> {
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if !value.is_object() {
        return Err(Problem::invalid(field, "must be a JSON object"));
    }
    if has_nul(value) {
        return Err(Problem::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// Refuses a user who is not a member of the transaction's tenant with a 404 naming the field
/// (so an id of another tenant's user behaves exactly like an id that does not exist).
pub async fn check_member(
    tx: &TenantTx,
    field: &'static str,
    user_id: Uuid,
) -> Result<(), ServiceError> {
    match tx
        .find_by_id::<entity::tenant_users::Entity>(user_id)
        .await?
    {
        Some(_) => Ok(()),
        // 404, as for any id that names nothing of this tenant (another tenant's user too).
        None => Err(ServiceError::NotFound(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn routes_are_unique() {
        let mut seen = HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.verb, r.path)),
                "{:?} {} twice",
                r.verb,
                r.path
            );
        }
    }

    #[test]
    fn text_checks() {
        assert!(check_text("name", "ok", 1, 10).is_ok());
        assert!(check_text("name", "  ", 1, 10).is_err());
        assert!(check_text("name", "a\0b", 1, 10).is_err());
        assert!(check_long_text("body", "a\nb\tc", 10).is_ok());
        assert!(check_long_text("body", "a\0", 10).is_err());
        assert!(check_json_object("m", &serde_json::json!({"a": ["\u{0}"]})).is_err());
        assert!(check_json_object("m", &serde_json::json!([1])).is_err());
        assert!(check_json_object("m", &serde_json::json!({"a": 1})).is_ok());
    }
}

/// `deserialize_with` helpers for integer fields: JSON Schema's `integer` includes numbers
/// written with a zero fraction (`3.0`), so the API accepts them too; any other fraction, or a
/// value out of the field's range, is a 422.
pub mod whole {
    use serde::de::{Deserialize, Deserializer, Error};

    fn read<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        n: serde_json::Number,
    ) -> Result<T, D::Error> {
        let wide: Option<i128> = if let Some(i) = n.as_i64() {
            Some(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Some(i128::from(u))
        } else {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1.8e19)
                .map(|f| f as i128)
        };
        wide.and_then(|w| T::try_from(w).ok())
            .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {n}")))
    }

    /// A required (or defaulted) integer.
    pub fn number<'de, D: Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
        read::<D, T>(serde_json::Number::deserialize(d)?)
    }

    /// An optional integer (`null` or absent: `None`; use with `#[serde(default)]`).
    pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            Some(n) => read::<D, T>(n).map(Some),
            None => Ok(None),
        }
    }
}
