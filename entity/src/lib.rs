//! SeaORM entities for every table of a migrated Tenantry database.
//!
//! One module per table, named after it, each with the classic SeaORM entity items: `Model`
//! (a row), `ActiveModel` (a row being built or changed), `Entity`, `Column`, `PrimaryKey` and
//! `Relation`. The [`prelude`] re-exports every `Entity` under the table's name in
//! UpperCamelCase (`Projects`, `ApiKeys`, ...).
//!
//! # Tenant-scoped and global entities
//!
//! **Every tenant-scoped entity, i.e. every table with a `tenant_id` column, implements
//! [`TenantScoped`]**, declared in its module with one line, `tenant_scoped!(Entity,
//! Column::TenantId);`, and is listed by [`tenant_scoped_tables`]. The service relies on the
//! trait to filter every query by the current tenant and to fill the tenant on insert, so a
//! new tenant table must implement it too; the `entities_match` integration test compares the
//! list with the tables of a migrated database that have a `tenant_id` column and fails when
//! one is missing.
//!
//! The global entities, [`users`], [`tenants`] and [`superadmin_audit_logs`], do not implement
//! it: their rows belong to no single tenant.
//!
//! Tenant-scoped tables have composite primary keys `(tenant_id, id)` (`(tenant_id, user_id)`
//! for [`tenant_users`]), and references between them are composite too, e.g.
//! `documents (tenant_id, project_id) -> projects (tenant_id, id)`, so a row can never point
//! into another tenant.
//!
//! Column types follow the database exactly (`text` is [`ColumnType::Text`], `jsonb` is
//! [`ColumnType::JsonBinary`], `citext` is a custom type, ...), which the `entities_match`
//! test checks against `information_schema`.
//!
//! [`ColumnType::Text`]: sea_orm::sea_query::ColumnType::Text
//! [`ColumnType::JsonBinary`]: sea_orm::sea_query::ColumnType::JsonBinary
#![warn(missing_docs)]

pub mod prelude;
pub mod tenant_scoped;

pub mod api_keys;
pub mod audit_logs;
pub mod documents;
pub mod member_roles;
pub mod projects;
pub mod role_permissions;
pub mod roles;
pub mod superadmin_audit_logs;
pub mod tasks;
pub mod tenant_users;
pub mod tenants;
pub mod usage_events;
pub mod users;

pub use tenant_scoped::{TenantScoped, tenant_scoped_tables};
