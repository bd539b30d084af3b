//! `cargo xtask ...`: project automation in Rust, so the same code runs on every machine.
//!
//! * `db start|stop|status|url`: a persistent local dev cluster under `target/tenantry-dev`.
//! * `demo`: the README's first command: start the local cluster and apply every migration.
//! * `test-isolation`: the attack matrix against an ephemeral, freshly migrated database.

mod db;
mod isolation;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the local development cluster.
    Db {
        #[command(subcommand)]
        action: db::DbAction,
    },
    /// Start the local cluster and apply every migration, printing what was applied.
    Demo,
    /// Attack every tenant table of a freshly migrated ephemeral database; non-zero on failure.
    TestIsolation(isolation::IsolationArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The matrix is the output of test-isolation; migration progress would only bury it.
    let default_filter = match cli.command {
        Command::TestIsolation(_) => "warn",
        _ => "info,sqlx=warn,sea_orm=warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_target(false)
        .init();
    match cli.command {
        Command::Db { action } => db::run(action).await,
        Command::Demo => db::demo().await,
        Command::TestIsolation(args) => isolation::run(args).await,
    }
}
