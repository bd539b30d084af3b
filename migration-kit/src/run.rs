//! The migration runner: every command holds one PostgreSQL advisory lock for its whole run,
//! on a single connection, with `lock_timeout` set so a blocked DDL fails fast instead of
//! queueing the application behind it.

use crate::names::MIGRATION_LOCK_KEY;
use crate::planned::PlannedMigrator;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Apply pending migrations (at most `n`).
    Up(Option<u32>),
    /// Roll back applied migrations (at most `n`, default 1).
    Down(Option<u32>),
    /// Print every migration's status.
    Status,
    /// Drop everything (our schemas and `public`), then apply all migrations.
    Fresh,
    /// Roll back all, then apply all.
    Refresh,
    /// Roll back all.
    Reset,
}

/// Opens the single connection a run uses (the advisory lock is per session).
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url);
    // One connection for the whole run, never recycled: the advisory lock lives in its session.
    opts.max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false);
    Database::connect(opts).await
}

/// `TENANTRY_LOCK_TIMEOUT` (a PostgreSQL interval, default `5s`).
pub fn lock_timeout() -> String {
    std::env::var("TENANTRY_LOCK_TIMEOUT").unwrap_or_else(|_| "5s".into())
}

/// Runs `command` on `db` (which must be a single-connection pool) under the advisory lock.
/// A second concurrent run waits for the lock, then finds nothing left to do.
pub async fn run<Migrator: PlannedMigrator>(
    db: &DatabaseConnection,
    command: Command,
) -> Result<(), DbErr> {
    with_lock(db, async {
        match command {
            Command::Up(n) => Migrator::up(db, n).await,
            Command::Down(n) => {
                let n = n.unwrap_or(1);
                check_down_guards::<Migrator>(db, Some(n)).await?;
                Migrator::down(db, Some(n)).await
            }
            Command::Status => Migrator::status(db).await,
            Command::Fresh => fresh::<Migrator>(db).await,
            Command::Refresh => {
                check_down_guards::<Migrator>(db, None).await?;
                Migrator::down(db, None).await?;
                Migrator::up(db, None).await
            }
            Command::Reset => {
                check_down_guards::<Migrator>(db, None).await?;
                Migrator::reset(db).await
            }
        }
    })
    .await
}

/// Runs `work` under the migration advisory lock with `lock_timeout` set, like every command
/// of [`run`] (an adoption uses it).
pub async fn with_lock<T>(
    db: &DatabaseConnection,
    work: impl std::future::Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    acquire_lock(db).await?;
    // Only after the lock: `lock_timeout` would otherwise also cut the wait for it short.
    let timeout = lock_timeout();
    let result = async {
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_catalog.set_config('lock_timeout', $1, false)",
            [timeout.into()],
        ))
        .await?;
        work.await
    }
    .await;
    let unlock = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_catalog.pg_advisory_unlock($1)",
            [MIGRATION_LOCK_KEY.into()],
        ))
        .await;
    let value = result?;
    unlock.map(|_| value)
}

/// Takes the session advisory lock, polling `pg_try_advisory_lock` rather than blocking in
/// `pg_advisory_lock`: a session blocked in a statement holds a snapshot, and the running
/// migration's `CREATE INDEX CONCURRENTLY` would wait for that snapshot forever (a deadlock).
async fn acquire_lock(db: &DatabaseConnection) -> Result<(), DbErr> {
    let mut pause = std::time::Duration::from_millis(50);
    let mut announced = false;
    loop {
        let got = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_catalog.pg_try_advisory_lock($1)",
                [MIGRATION_LOCK_KEY.into()],
            ))
            .await?
            .map(|r| r.try_get_by_index::<bool>(0))
            .transpose()?
            .unwrap_or(false);
        if got {
            return Ok(());
        }
        if !announced {
            tracing::info!("another migration run holds the lock; waiting for it to finish");
            announced = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(1));
    }
}

/// Runs the `down` guards of every migration a rollback of `n` (all when `None`) would undo,
/// before undoing any: sea-orm-migration commits each migration's `down` separately, so a guard
/// that refused halfway would leave the later migrations already rolled back.
async fn check_down_guards<Migrator: PlannedMigrator>(
    db: &DatabaseConnection,
    n: Option<u32>,
) -> Result<(), DbErr> {
    let applied: Vec<String> = Migrator::get_applied_migrations(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let take = n.map_or(usize::MAX, |n| n as usize);
    // The guards look at data under savepoints; the transaction is only ever rolled back.
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    for name in applied.iter().rev().take(take) {
        if let Some(m) = Migrator::planned().into_iter().find(|m| m.name() == name) {
            m.plan().check_down(&txn).await?;
        }
    }
    txn.rollback().await
}

/// sea-orm-migration's `fresh` drops only the tables of the current schema; ours also live in
/// `tenancy` and include functions, so fresh drops both schemas whole and recreates `public`.
async fn fresh<Migrator: PlannedMigrator>(db: &DatabaseConnection) -> Result<(), DbErr> {
    use crate::ddl::{Render, SchemaCreate, SchemaDrop};
    for schema in [crate::names::TENANCY_SCHEMA, crate::names::APP_SCHEMA] {
        db.execute_unprepared(&SchemaDrop::cascade(schema).to_sql())
            .await?;
    }
    db.execute_unprepared(&SchemaCreate::new(crate::names::APP_SCHEMA).to_sql())
        .await?;
    Migrator::up(db, None).await
}

/// Pending migrations, in order (read-only: never creates the migrations table).
pub async fn pending<Migrator: PlannedMigrator>(
    db: &DatabaseConnection,
) -> Result<Vec<String>, DbErr> {
    Ok(Migrator::get_pending_migrations_read_only(db)
        .await?
        .iter()
        .map(|m| m.name().to_owned())
        .collect())
}
