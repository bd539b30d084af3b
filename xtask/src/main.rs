//! `cargo xtask ...`: project automation in Rust, so the same code runs on every machine.
//!
//! * `db start|stop|status|url`: a persistent local dev cluster under `target/tenantry-dev`.
//! * `demo`: the README's first command: start the local cluster, migrate, seed sample tenants,
//!   issue API keys and serve the API until Ctrl-C.
//! * `test-isolation`: the attack matrix against an ephemeral, freshly migrated database.
//! * `bench`: the benchmarks of docs/BENCHMARKS.md against an ephemeral database.

mod bench;
mod db;
mod demo;
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
    /// Start the local cluster, migrate, seed sample tenants and serve the API until Ctrl-C.
    Demo,
    /// Attack every tenant table of a freshly migrated ephemeral database; non-zero on failure.
    TestIsolation(isolation::IsolationArgs),
    /// Measure RLS, transaction, backfill, API and authentication overheads (docs/BENCHMARKS.md).
    Bench(bench::BenchArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The matrix is the output of test-isolation; migration progress would only bury it.
    let default_filter = match cli.command {
        Command::TestIsolation(_) => "warn",
        // One log line per HTTP request would measure the terminal, not the API.
        Command::Bench(_) => "info,sqlx=warn,sea_orm=warn,tower_http=warn",
        _ => "info,sqlx=warn,sea_orm=warn",
    };
    // bench prints its table (or JSON) on stdout, so its progress logs go to stderr.
    let log_writer = if matches!(cli.command, Command::Bench(_)) {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_target(false)
        .with_writer(log_writer)
        .init();
    match cli.command {
        Command::Db { action } => db::run(action).await,
        Command::Demo => demo::run().await,
        Command::TestIsolation(args) => isolation::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
