//! The persistent local dev cluster: `cargo xtask db start|stop|status|url`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use migration::run::{self, Command};
use sea_orm::ConnectionTrait;
use tenantry_tests::Cluster;
use tenantry_tests::cluster::BOOTSTRAP_SUPERUSER;
use tenantry_tests::databases::connect;
use tenantry_tests::logins::{LoginRole, OWNER_LOGIN, create_logins, grant_logins};

/// The dev database's name.
pub const DEV_DB: &str = "tenantry";

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Start (creating on first use) the cluster, its logins and database; write DATABASE_URL to .env.
    Start,
    /// Stop the cluster (data is kept).
    Stop,
    /// Say whether it runs, where, and which migrations are pending.
    Status,
    /// Print a connection URL.
    Url {
        /// Which login.
        #[arg(long, value_enum, default_value = "owner")]
        role: Role,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    Owner,
    App,
    Superadmin,
    Legacy,
}

impl From<Role> for LoginRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => LoginRole::Owner,
            Role::App => LoginRole::App,
            Role::Superadmin => LoginRole::Superadmin,
            Role::Legacy => LoginRole::Legacy,
        }
    }
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cluster_dir() -> PathBuf {
    workspace_root().join("target").join("tenantry-dev")
}

fn open() -> anyhow::Result<Cluster> {
    Cluster::open_persistent(&cluster_dir()).context("opening the dev cluster")
}

pub async fn run(action: DbAction) -> anyhow::Result<()> {
    match action {
        DbAction::Start => {
            let cluster = start().await?;
            println!(
                "dev cluster running on 127.0.0.1:{} ({})",
                cluster.port(),
                cluster.dir().display()
            );
            for role in [Role::Owner, Role::App, Role::Superadmin] {
                println!(
                    "  {:10} {}",
                    format!("{role:?}").to_lowercase(),
                    cluster.url(LoginRole::from(role).login(), DEV_DB)
                );
            }
            println!(
                "DATABASE_URL (owner) written to .env: `cargo run -p migration -- up` now works."
            );
        }
        DbAction::Stop => {
            open()?.stop()?;
            println!("dev cluster stopped");
        }
        DbAction::Status => {
            let cluster = open()?;
            if !cluster.is_running() {
                println!(
                    "dev cluster is stopped ({}); `cargo xtask db start` starts it",
                    cluster.dir().display()
                );
                return Ok(());
            }
            println!("dev cluster running on 127.0.0.1:{}", cluster.port());
            let db = run::connect(&cluster.url(OWNER_LOGIN, DEV_DB)).await?;
            let pending = run::pending(&db).await?;
            if pending.is_empty() {
                println!("migrations: all applied");
            } else {
                println!("migrations pending: {}", pending.join(", "));
            }
        }
        DbAction::Url { role } => {
            let cluster = open()?;
            println!("{}", cluster.url(LoginRole::from(role).login(), DEV_DB));
        }
    }
    Ok(())
}

/// Starts the cluster, creates the logins and the database, writes `.env`.
pub async fn start() -> anyhow::Result<Cluster> {
    let cluster = open()?;
    cluster.start()?;
    let su = connect(&cluster.url(BOOTSTRAP_SUPERUSER, "postgres"), 1).await?;
    create_logins(&su).await?;
    let exists = su
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [DEV_DB.into()],
        ))
        .await?
        .is_some();
    if !exists {
        su.execute_unprepared(&format!("CREATE DATABASE {DEV_DB} OWNER {OWNER_LOGIN}"))
            .await?;
    }
    su.close().await?;
    write_env(&cluster.url(OWNER_LOGIN, DEV_DB))?;
    Ok(cluster)
}

fn write_env(url: &str) -> anyhow::Result<()> {
    let path = workspace_root().join(".env");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| !l.starts_with("DATABASE_URL="))
        .map(str::to_owned)
        .collect();
    lines.push(format!("DATABASE_URL={url}"));
    std::fs::write(&path, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The database half of `cargo xtask demo` (see `demo.rs`): start, migrate, grant the
/// logins, and say what was applied. Returns the running cluster.
pub async fn demo() -> anyhow::Result<Cluster> {
    let cluster = start().await?;
    let url = cluster.url(OWNER_LOGIN, DEV_DB);
    let db = run::connect(&url).await?;
    let pending = run::pending(&db).await?;
    run::run(&db, Command::Up(None))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    grant_logins(&db).await?;
    if pending.is_empty() {
        println!("all migrations were already applied");
    } else {
        println!("applied {} migration(s):", pending.len());
        for name in &pending {
            println!("  {name}");
        }
    }
    let report = migration::audit::audit_default(&db).await?;
    println!(
        "catalog audit: {} checks, {} failed",
        report.findings.len(),
        report.failures().count()
    );
    println!(
        "\nlocal PostgreSQL on 127.0.0.1:{} (stop it with `cargo xtask db stop`)",
        cluster.port()
    );
    for role in [Role::Owner, Role::App, Role::Superadmin] {
        println!(
            "  {:10} {}",
            format!("{role:?}").to_lowercase(),
            cluster.url(LoginRole::from(role).login(), DEV_DB)
        );
    }
    Ok(cluster)
}
