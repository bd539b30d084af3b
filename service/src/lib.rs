//! Tenantry's service library: the part other crates use every day.
//!
//! * [`Tenantry`] holds the app pool (a login in `tenantry_app`) and, optionally, the
//!   superadmin pool. Nothing else reaches the database.
//! * A [`TenantContext`] comes only from something authenticated (an API key, a verified
//!   token plus a membership check, provisioning); [`TenantTx`] runs work for it, with the
//!   context set transaction-locally and every scoped query also filtered by `tenant_id`.
//! * [`Tenantry::fetch_all`], [`Tenantry::fetch_one`] and [`Tenantry::insert_one`] run one
//!   statement for a context in one round trip ([`pipeline`]), with the same guarantees.
//! * [`SuperadminTx`] is the explicit, audited way to cross tenants.
#![warn(missing_docs)]

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod auth_cache;
pub mod background;
pub mod config;
pub mod context;
pub mod dedicated;
pub mod error;
pub mod members;
pub mod permissions;
pub mod pipeline;
mod rows;
pub mod superadmin;
pub mod tenant_conn;
pub mod tenant_move;
pub mod tenantry;
pub mod tenants;
pub mod tx;
pub mod usage;

pub use api_keys::{ApiKeyInfo, IssuedApiKey, NewApiKey};
pub use auth::ApiKeyPrincipal;
pub use config::TenantryConfig;
pub use context::{Actor, MemberRole, TenantContext};
pub use error::{Result, ServiceError};
pub use members::Member;
pub use superadmin::{SuperadminGrant, SuperadminTx};
pub use tenant_conn::TenantConn;
pub use tenant_move::{MoveOptions, MoveOutcome, MoveReport, MoveUntil};
pub use tenantry::Tenantry;
pub use tenants::{NewTenant, OffboardReport, TenantSlug, TenantStatus};
pub use tx::{Page, TenantTx};
