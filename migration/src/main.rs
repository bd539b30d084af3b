//! `cargo run -p migration -- up|down|status|fresh|refresh|reset|plan|verify`.

use anyhow::{Context, bail};
use clap::Parser;
use migration::cli::{Cli, CliCommand};
use migration::run::{self, Command};
use migration::{guards, planned};
use sea_orm::ConnectionTrait;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn,sea_orm_migration=info".into()),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let url = cli
        .database_url
        .context("DATABASE_URL is not set: pass -u URL, export it, or run `cargo xtask db start`, which writes it to .env")?;
    let db = run::connect(&url)
        .await
        .context("cannot connect to the database")?;
    let command = cli.command.unwrap_or(CliCommand::Up { num: None });
    let tenant_schemas = matches!(command, CliCommand::Up { num: None } | CliCommand::Status);
    let command = match command {
        CliCommand::Up { num } => Command::Up(num),
        CliCommand::Down { num, force } => {
            guards::FORCE_DOWN.store(force, std::sync::atomic::Ordering::SeqCst);
            Command::Down(num)
        }
        CliCommand::Status => Command::Status,
        CliCommand::Fresh => Command::Fresh,
        CliCommand::Refresh => Command::Refresh,
        CliCommand::Reset => Command::Reset,
        CliCommand::Plan { down, num } => return plan(&db, down, num).await,
        CliCommand::Verify { app_role } => return verify(&db, &app_role).await,
    };
    let status = matches!(command, Command::Status);
    run::run(&db, command)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if tenant_schemas {
        schemas(&url, status).await?;
    }
    Ok(())
}

/// `TENANTRY_SCHEMA_CONCURRENCY`: schemas migrated at once (default 4).
fn schema_concurrency() -> usize {
    std::env::var("TENANTRY_SCHEMA_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4)
}

/// After `up`: every dedicated tenant's schema; after `status`: their versions at a glance.
async fn schemas(url: &str, status_only: bool) -> anyhow::Result<()> {
    use migration::dedicated::{migrate, tenant_schema_migrations};
    let concurrency = schema_concurrency();
    let mut opts = sea_orm::ConnectOptions::new(url);
    opts.max_connections(concurrency as u32).sqlx_logging(false);
    let pool = sea_orm::Database::connect(opts)
        .await
        .context("cannot connect to the database")?;
    if status_only {
        let applied = migrate::applied(&pool).await?;
        println!("tenant schemas: {}", migrate::summary(&applied));
        return Ok(());
    }
    let report = migrate::up(&pool, &tenant_schema_migrations(), concurrency).await?;
    println!(
        "tenant schemas: {} migrated, {} already current, {} failed",
        report.migrated,
        report.current,
        report.failed.len()
    );
    for f in &report.failed {
        eprintln!("  {} at {}: {}", f.schema, f.migration, f.error);
    }
    if !report.failed.is_empty() {
        bail!(
            "{} tenant schema(s) failed; they are unchanged, rerun `up` to retry",
            report.failed.len()
        );
    }
    Ok(())
}

async fn plan(
    db: &sea_orm::DatabaseConnection,
    down: bool,
    num: Option<u32>,
) -> anyhow::Result<()> {
    let pending = run::pending(db).await?;
    let all = planned();
    let selected: Vec<_> = if down {
        let applied: Vec<_> = all
            .iter()
            .filter(|m| !pending.iter().any(|p| p == m.name()))
            .collect();
        applied
            .into_iter()
            .rev()
            .take(num.unwrap_or(1) as usize)
            .collect()
    } else {
        let todo: Vec<_> = all
            .iter()
            .filter(|m| pending.iter().any(|p| p == m.name()))
            .collect();
        todo.into_iter()
            .take(num.map_or(usize::MAX, |n| n as usize))
            .collect()
    };
    if selected.is_empty() {
        println!("-- nothing to {}", if down { "roll back" } else { "apply" });
    }
    if !down && num.is_none() && pending.is_empty() {
        let applied = migration::dedicated::migrate::applied(db).await?;
        let all = migration::dedicated::tenant_schema_migrations();
        for (name, schemas) in migration::dedicated::migrate::pending(&all, &applied) {
            let names: Vec<_> = schemas.iter().map(|s| s.as_str()).collect();
            println!(
                "-- tenant-schema migration {name} would run in {}: {}",
                names.len(),
                names.join(", ")
            );
        }
    }
    for m in selected {
        println!(
            "-- ===== {} ({}) =====",
            m.name(),
            if down { "down" } else { "up" }
        );
        let plan = m.plan();
        let lines = if down {
            plan.render_down()
        } else {
            plan.render_up()
        };
        for line in lines {
            println!("{line}");
        }
    }
    Ok(())
}

async fn verify(db: &sea_orm::DatabaseConnection, app_role: &str) -> anyhow::Result<()> {
    db.execute_unprepared("SET default_transaction_read_only = on")
        .await?;
    let report = migration::dedicated::audit::audit_all(db, app_role).await?;
    println!("{report}");
    if !report.passed() {
        bail!("verify: {} invariant(s) failed", report.failures().count());
    }
    Ok(())
}
