//! Adoption: tenancy for the tables of an existing database.
//!
//! An [`Adoption`] declares which tables of one schema become tenant-scoped and how their
//! existing rows get a tenant; everything else (keys, foreign keys, uniques, partitions, views,
//! functions, triggers) is read from the live catalog by [`plan`], which returns an
//! [`AdoptionPlan`]: a report per table, the blockers that make the result unsafe, and the two
//! phases as ordinary [`MigrationPlan`]s (phase 1: columns and backfill; phase 2: keys, row level
//! security, policies, grants), run by the same engine as `up`.
//!
//! ```ignore
//! let adoption = Adoption::new("public").global(&["countries"]).tenant_root("stores", "name");
//! let plan = migration_kit::adoption::plan(&db, &adoption).await?;
//! ```

mod catalog;
mod chains;
mod declaration;
mod lint;
mod migration;
mod planner;
pub mod record;

pub use catalog::Catalog;
pub use declaration::{Adoption, Phase, Selection, TenantRule};
pub use migration::AdoptionMigration;
pub use planner::{AdoptionPlan, TableReport, plan, plan_before_core};

use crate::plan::MigrationPlan;

/// Why an adoption cannot even be planned (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum AdoptionError {
    /// The schema does not exist.
    #[error("schema {0:?} does not exist in this database")]
    UnknownSchema(String),
    /// Tables named in the declaration do not exist.
    #[error("no such table in schema {schema:?}: {}", tables.join(", "))]
    UnknownTables {
        /// The schema.
        schema: String,
        /// The missing tables.
        tables: Vec<String>,
    },
    /// The database has no tenancy core (`tenancy.tenants`).
    #[error(
        "this database has no tenancy core (schema tenancy, table tenants): `migration adopt` \
         installs it first on a database with none of Tenantry's objects; see \
         docs/MIGRATIONS.md, \"Adopting your own database\""
    )]
    NoCore,
    /// The plan has blockers; nothing was changed.
    #[error("refused, nothing changed:\n{}", .0.iter().map(|b| format!("  - {b}")).collect::<Vec<_>>().join("\n"))]
    Blocked(Vec<String>),
    /// A database error.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

impl AdoptionPlan {
    /// The steps of `phase`.
    pub fn migration_plan(&self, phase: Phase) -> MigrationPlan {
        let mut plan = MigrationPlan::new();
        if matches!(phase, Phase::Columns | Phase::All) {
            plan.extend(self.phase1.clone());
        }
        if matches!(phase, Phase::Enforce | Phase::All) {
            plan.extend(self.phase2.clone());
        }
        plan
    }
}
