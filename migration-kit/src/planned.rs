//! A named migration plan, and the migrator trait the runner is generic over.

use sea_orm_migration::{
    DbErr, MigrationName, MigrationTrait, MigratorTrait, SchemaManager, async_trait,
};

use crate::plan::MigrationPlan;

/// One migration: a name, a plan, and whether it runs inside one transaction.
pub struct Planned {
    /// The name recorded in `seaql_migrations`.
    pub name: &'static str,
    /// Builds the plan.
    pub plan: fn() -> MigrationPlan,
    /// Whether `up`/`down` run inside one transaction.
    pub transactional: bool,
}

impl Planned {
    /// A migration named `name` (as recorded in `seaql_migrations`) running `plan`.
    pub const fn new(name: &'static str, plan: fn() -> MigrationPlan, transactional: bool) -> Self {
        Self {
            name,
            plan,
            transactional,
        }
    }

    /// The migration's name as recorded in `seaql_migrations`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its plan.
    pub fn plan(&self) -> MigrationPlan {
        (self.plan)()
    }
}

impl MigrationName for Planned {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Planned {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.plan().up(manager, self.transactional).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        self.plan().down(manager, self.transactional).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(self.transactional)
    }
}

/// A migrator whose migrations are [`Planned`], so the runner can check their `down` guards.
pub trait PlannedMigrator: MigratorTrait {
    /// Every migration, in order.
    fn planned() -> Vec<Planned>;
}
