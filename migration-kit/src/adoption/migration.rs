//! An adoption as a migration of a user's migrator (what `adopt --write-migration` writes).

use sea_orm_migration::{DbErr, MigrationName, MigrationTrait, SchemaManager, async_trait};

use super::{Adoption, Phase, plan, record};

/// A migration that plans `adoption` against the live catalog when it runs, refuses on any
/// blocker, applies it (resumably, outside one long transaction) and records it; `down` undoes
/// it from the record, behind the guard that refuses to destroy tenant assignments.
pub struct AdoptionMigration {
    name: String,
    adoption: Adoption,
    phase: Phase,
}

impl AdoptionMigration {
    /// `name` as recorded in `seaql_migrations`; both phases.
    pub fn new(name: &str, adoption: Adoption) -> Self {
        Self {
            name: name.into(),
            adoption,
            phase: Phase::All,
        }
    }

    /// Only this phase.
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phase = phase;
        self
    }
}

impl MigrationName for AdoptionMigration {
    fn name(&self) -> &str {
        &self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AdoptionMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let planned = plan(manager.get_connection(), &self.adoption)
            .await
            .map_err(|e| DbErr::Migration(e.to_string()))?;
        record::apply(manager, &planned, self.phase)
            .await
            .map_err(|e| DbErr::Migration(e.to_string()))
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        record::undo_latest(manager.get_connection())
            .await
            .map(|_| ())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }
}
