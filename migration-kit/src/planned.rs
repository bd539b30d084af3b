//! A named migration plan, and the migrator trait the runner is generic over.

use sea_orm_migration::{
    DbErr, MigrationName, MigrationTrait, MigratorTrait, SchemaManager, async_trait,
};

use crate::plan::MigrationPlan;
use crate::run;

/// Squawk rules a rollback breaks by its nature (it undoes `up`): ignored for `plan --down`.
pub const DOWN_RULES: &str = "ban-drop-table, ban-set-schema, ban-drop-column, ban-drop-constraint, ban-drop-default, ban-drop-not-null, ban-drop-function, ban-drop-extension, ban-drop-schema, require-concurrent-index-deletion, constraint-missing-not-valid, adding-foreign-key-constraint, adding-serial-primary-key-field, prefer-robust-stmts";

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

    /// What `plan` prints for it: a header, the session setting the runner applies, then the
    /// SQL of `up` (or `down`), inside `BEGIN`/`COMMIT` when the migration runs in one
    /// transaction. The output is what squawk lints (`tests/tests/plans_lint.rs`).
    pub fn render(&self, down: bool) -> Vec<String> {
        let plan = self.plan();
        let mut out = vec![
            format!(
                "-- ===== {} ({}) =====",
                self.name,
                if down { "down" } else { "up" }
            ),
            "-- squawk-ignore-file require-statement-timeout -- no statement_timeout on purpose: VALIDATE, concurrent index builds and backfill batches must finish; lock_timeout bounds how long others wait on us".into(),
            "-- set by the runner for the whole session (TENANTRY_LOCK_TIMEOUT):".into(),
            format!(
                "SET lock_timeout = '{}';",
                run::lock_timeout().replace('\'', "''")
            ),
        ];
        if self.transactional {
            out.push("BEGIN;".into());
        }
        if down {
            // A rollback removes what `up` created: that is what these rules flag. What must
            // not be lost is guarded (`down` refuses to drop the tenant assignment of rows of
            // several tenants unless forced).
            out.push(format!("-- squawk-ignore-file {DOWN_RULES} -- a rollback drops what up created and restores what it replaced, by design; the down guard refuses to lose tenant assignments"));
            out.extend(plan.render_down());
        } else {
            out.extend(plan.render_up_in(self.transactional));
        }
        if self.transactional {
            out.push("COMMIT;".into());
        }
        out
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
