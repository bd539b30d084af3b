//! One ephemeral cluster per test process, a migrated template database built once, and a
//! fresh database per test cloned from it with `CREATE DATABASE ... TEMPLATE`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tokio::sync::OnceCell;

use crate::HarnessError;
use crate::cluster::{BOOTSTRAP_SUPERUSER, Cluster};
use crate::logins::{LoginRole, OWNER_LOGIN, create_logins, grant_logins};

const TEMPLATE_DB: &str = "tenantry_template";

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static TEMPLATE: OnceCell<Result<(), String>> = OnceCell::const_new();
static DB_SEQ: AtomicUsize = AtomicUsize::new(0);

/// The process's ephemeral cluster, started on first use and stopped when the process exits.
pub fn shared_cluster() -> Result<&'static Cluster, HarnessError> {
    let started = CLUSTER.get_or_init(|| {
        let cluster = Cluster::start_ephemeral().map_err(|e| e.to_string())?;
        register_exit_hook();
        Ok(cluster)
    });
    started.as_ref().map_err(|e| HarnessError::Io(e.clone()))
}

/// Statics are never dropped, so the cluster is stopped from an `atexit` hook; a process that
/// is killed leaves it behind for the next run's stale-cluster sweep.
fn register_exit_hook() {
    extern "C" fn stop_shared_cluster() {
        if let Some(Ok(cluster)) = CLUSTER.get() {
            cluster.shutdown();
        }
    }
    // SAFETY: registering a plain `extern "C" fn` with no captured state is always sound.
    unsafe {
        libc::atexit(stop_shared_cluster);
    }
}

/// A database of the shared cluster, with a URL per login.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The database's name.
    pub name: String,
    port: u16,
}

impl TestDb {
    /// The connection URL for one of the three logins.
    pub fn url(&self, role: LoginRole) -> String {
        self.url_for(role.login())
    }

    /// The URL for the bootstrap superuser (harness use only: dumps, breaking things on purpose).
    pub fn superuser_url(&self) -> String {
        self.url_for(BOOTSTRAP_SUPERUSER)
    }

    /// The cluster's TCP port on 127.0.0.1 (for a proxy in front of it).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn url_for(&self, login: &str) -> String {
        format!("postgres://{login}@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// Connects as `role` with a pool of `max` connections.
    pub async fn connect(
        &self,
        role: LoginRole,
        max: u32,
    ) -> Result<DatabaseConnection, HarnessError> {
        connect(&self.url(role), max).await
    }

    /// Connects as the bootstrap superuser.
    pub async fn connect_superuser(&self) -> Result<DatabaseConnection, HarnessError> {
        connect(&self.superuser_url(), 1).await
    }
}

/// Opens a pool on `url` with at most `max` connections and quiet statement logging.
pub async fn connect(url: &str, max: u32) -> Result<DatabaseConnection, HarnessError> {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max)
        .min_connections(0)
        .sqlx_logging(false);
    Ok(Database::connect(opts).await?)
}

/// A new, empty database owned by `tenantry_owner` (nothing migrated), for tests that start
/// from the legacy schema.
pub async fn empty_db() -> Result<TestDb, HarnessError> {
    let cluster = shared_cluster()?;
    ensure_logins(cluster).await?;
    create_database(cluster, "template0").await
}

/// A new database with every migration applied and the logins granted their roles.
pub async fn migrated_db() -> Result<TestDb, HarnessError> {
    let cluster = shared_cluster()?;
    TEMPLATE
        .get_or_init(|| async { build_template(cluster).await.map_err(|e| e.to_string()) })
        .await
        .as_ref()
        .map_err(|e| HarnessError::Io(format!("building the migrated template: {e}")))?;
    create_database(cluster, TEMPLATE_DB).await
}

async fn ensure_logins(cluster: &Cluster) -> Result<(), HarnessError> {
    static LOGINS: OnceCell<()> = OnceCell::const_new();
    LOGINS
        .get_or_try_init(|| async {
            let su = connect(&cluster.url(BOOTSTRAP_SUPERUSER, "postgres"), 1).await?;
            create_logins(&su).await?;
            su.close().await?;
            Ok::<(), HarnessError>(())
        })
        .await?;
    Ok(())
}

async fn build_template(cluster: &Cluster) -> Result<(), HarnessError> {
    ensure_logins(cluster).await?;
    let su = connect(&cluster.url(BOOTSTRAP_SUPERUSER, "postgres"), 1).await?;
    su.execute_unprepared(&format!(
        "CREATE DATABASE {TEMPLATE_DB} OWNER {OWNER_LOGIN}"
    ))
    .await?;
    su.close().await?;
    let owner = connect(&cluster.url(OWNER_LOGIN, TEMPLATE_DB), 1).await?;
    Migrator::up(&owner, None).await?;
    grant_logins(&owner).await?;
    owner.close().await?;
    Ok(())
}

async fn create_database(cluster: &Cluster, template: &str) -> Result<TestDb, HarnessError> {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DB_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let su = connect(&cluster.url(BOOTSTRAP_SUPERUSER, "postgres"), 1).await?;
    su.execute_unprepared(&format!(
        "CREATE DATABASE {name} TEMPLATE {template} OWNER {OWNER_LOGIN}"
    ))
    .await?;
    su.close().await?;
    Ok(TestDb {
        name,
        port: cluster.port(),
    })
}
