//! Dedicated tenants: one schema (and one NOLOGIN role) per tenant, made by replaying the
//! tenant-schema plans ([`schema_plan`]) in it. See ARCHITECTURE.md, "Isolation modes".

pub mod audit;
pub mod entry_audit;
pub mod migrate;
pub mod name;
pub mod schema_plan;

pub use name::{InvalidTenantSchema, PLACEHOLDER, TenantSchema};
pub use schema_plan::{TenantSchemaMigration, template, tenant_schema_migrations};

/// The NOLOGIN, NOINHERIT role every tenant role is granted to; app logins are members of it,
/// so they may `SET ROLE` to a tenant role but inherit none of its privileges.
pub const DEDICATED_ROLE: &str = "tenantry_dedicated";
/// The SQLSTATE `tenancy.enter_tenant_schema()` raises when a dedicated tenant's schema or
/// role is missing (the service answers it with "unavailable", never another tenant's data).
pub const SCHEMA_UNAVAILABLE_SQLSTATE: &str = "TN001";
/// The SQLSTATE `tenancy.enter_tenant_schema()` raises in a transaction that is not READ
/// COMMITTED (m0016): a stricter level would read the tenant's row from a snapshot taken before
/// the move lock. The service's openings pin READ COMMITTED, so it means a caller's own opening.
pub const NOT_READ_COMMITTED_SQLSTATE: &str = "TN002";
/// The first key of a tenant's move lock (`pg_advisory_xact_lock*(MOVE_LOCK_CLASS,
/// hashtext(tenant id))`): every tenant transaction holds it shared, a move's switch
/// exclusively (m0014). The two-key form never meets the runner's one-key migration lock.
pub const MOVE_LOCK_CLASS: i32 = 0x746d_6f76;
