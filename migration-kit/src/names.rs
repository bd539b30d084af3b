//! The names every crate agrees on: schemas, roles, settings and the default tenant.

/// The schema holding Tenantry's own tables and functions.
pub const TENANCY_SCHEMA: &str = "tenancy";
/// The schema of Tenantry's identity table `users` (global: the people who sign in), since
/// m0011 moved it out of `public`.
pub const IDENTITY_SCHEMA: &str = TENANCY_SCHEMA;
/// The application schema holding the legacy (now tenant-scoped) tables.
pub const APP_SCHEMA: &str = "public";

/// The `search_path` a tenant transaction's schema entry resets to for a shared tenant
/// (`tenancy.enter_tenant_schema()`, m0013; m0016 leaves a session already on it alone). The
/// pipelined path's connections start on it.
pub const ENTRY_SEARCH_PATH: &str = "public, pg_temp";
/// The statement every tenant transaction's opening runs after its `SET LOCAL`s: the schema
/// entry, a procedure since m0020 (`CALL` runs it without a `SELECT` around it; the function
/// `tenancy.enter_tenant_schema()` the release before called now calls it).
pub const ENTRY_CALL: &str = "CALL tenancy.enter_tenant()";
/// Group role of the application: DML on tenant tables, EXECUTE on our functions, nothing more.
pub const APP_ROLE: &str = "tenantry_app";
/// Group role of the superadmin escape: policies let it see every row while a reason is set.
pub const SUPERADMIN_ROLE: &str = "tenantry_superadmin";
/// Group role of the unchanged single-tenant application: its policies pin it to the default
/// tenant whatever settings it sends (they read no setting), DML on the legacy tables only.
pub const LEGACY_ROLE: &str = "tenantry_legacy";
/// Owner of the SECURITY DEFINER lookups: may read only what those lookups need.
pub const DEFINER_ROLE: &str = "tenantry_definer";
/// The transaction-local setting holding the current tenant.
pub const TENANT_SETTING: &str = "tenantry.tenant_id";
/// The transaction-local setting holding the acting user.
pub const USER_SETTING: &str = "tenantry.user_id";
/// The transaction-local setting holding the reason of a superadmin transaction.
pub const SUPERADMIN_REASON_SETTING: &str = "tenantry.superadmin_reason";
/// The tenant every legacy row is assigned to by the backfill.
pub const DEFAULT_TENANT_ID: &str = "00000000-0000-0000-0000-000000000000";
/// The default tenant's slug.
pub const DEFAULT_TENANT_SLUG: &str = "default";
/// The tenant column of every tenant-scoped table.
pub const TENANT_COLUMN: &str = "tenant_id";
/// The advisory-lock key held by every migration run ("tenantry" in ASCII, as an i64).
pub const MIGRATION_LOCK_KEY: i64 = 0x7465_6e61_6e74_7279;
