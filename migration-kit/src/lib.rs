//! The tenancy migration kit: everything a migration crate needs to make PostgreSQL tables
//! tenant-scoped, and nothing of any concrete migration (Tenantry's own live in `migration`).
//!
//! * [`dsl`]: typed builders for PostgreSQL's security objects (RLS, policies, functions,
//!   roles, grants, default privileges) in sea-query's style; [`ddl`]: the table-level DDL
//!   sea-query lacks (constraints `NOT VALID`, `SET NOT NULL`, triggers, schemas, owners).
//! * [`plan`]: migrations as data. Every migration is a [`plan::MigrationPlan`] that `up`
//!   runs, `down` undoes in reverse and `plan` prints; [`planned::Planned`] names one.
//! * [`tenant_table::TenantTable`]: the one call that makes a table tenant-scoped.
//! * [`backfill`]: the batched, resumable backfill; [`guards`]: checks between steps.
//! * [`run`]: the advisory-locked runner, generic over a [`planned::PlannedMigrator`].
//! * [`audit`]: the catalog checks behind `verify`.
//! * [`adoption`]: tenancy for the tables of an existing database, planned from its catalog.
#![warn(missing_docs)]

pub mod adoption;
pub mod audit;
pub mod backfill;
pub mod cli;
pub mod ddl;
pub mod dsl;
pub mod guards;
pub mod names;
pub mod plan;
pub mod planned;
pub mod probes;
pub mod run;
pub mod tables;
pub mod tenant_table;
