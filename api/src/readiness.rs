//! `/readyz`'s migration check.
//!
//! The app login is deliberately unprivileged and may lack `SELECT` on `seaql_migrations`.
//! Readiness therefore uses its own one-connection pool on `TENANTRY_READY_DATABASE_URL`
//! (a login that may read that table, e.g. a read-only monitoring login), falling back to the
//! app login's URL in the binary; when the login lacks the privilege, the migrations are
//! reported as `unknown` rather than failing readiness, since the database itself answered.

use std::time::Duration;

use migration::run::pending;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use tokio::sync::OnceCell;

/// SQLSTATEs that mean "this login may not read the migrations table".
const NOT_READABLE: [&str; 2] = ["42501", "42P01"];

/// What is known about the migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    /// Every migration the binary knows is applied.
    Current,
    /// These are not applied yet.
    Pending(Vec<String>),
    /// Not checked: no URL, or the login may not read `seaql_migrations`.
    Unknown,
}

/// Whether this login may read `seaql_migrations` (`None`: there is no such table).
async fn readable(pool: &DatabaseConnection) -> Result<Option<bool>, sea_orm::DbErr> {
    let row = pool
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_catalog.has_table_privilege(t.oid, 'SELECT') AS readable \
             FROM (SELECT pg_catalog.to_regclass('seaql_migrations') AS oid) t",
        ))
        .await?;
    match row {
        Some(row) => row.try_get::<Option<bool>>("", "readable"),
        None => Ok(None),
    }
}

/// The probe: a lazily opened one-connection pool.
pub struct Readiness {
    url: Option<String>,
    pool: OnceCell<DatabaseConnection>,
}

impl Readiness {
    /// A probe on `url` (none: migrations are never checked).
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            pool: OnceCell::new(),
        }
    }

    /// Checks the migrations; `Err` when the database cannot be reached.
    pub async fn migrations(&self) -> Result<MigrationState, String> {
        let Some(url) = &self.url else {
            return Ok(MigrationState::Unknown);
        };
        let pool = self
            .pool
            .get_or_try_init(|| async {
                let mut opts = ConnectOptions::new(url.clone());
                opts.max_connections(1)
                    .min_connections(0)
                    .acquire_timeout(Duration::from_secs(2))
                    .connect_timeout(Duration::from_secs(2))
                    .sqlx_logging(false);
                Database::connect(opts).await.map_err(|e| e.to_string())
            })
            .await?;
        // `pending` probes the table through information_schema, which hides tables the login
        // may not read: without this check, an unprivileged login would see "nothing applied".
        match readable(pool).await {
            Ok(Some(false)) => return Ok(MigrationState::Unknown),
            Ok(_) => {}
            Err(err) => return Err(err.to_string()),
        }
        match pending(pool).await {
            Ok(names) if names.is_empty() => Ok(MigrationState::Current),
            Ok(names) => Ok(MigrationState::Pending(names)),
            Err(err) => match service::error::sqlstate(&err).as_deref() {
                Some(code) if NOT_READABLE.contains(&code) => Ok(MigrationState::Unknown),
                _ => Err(err.to_string()),
            },
        }
    }
}
