//! `api`: the Tenantry HTTP server. Configuration comes from `TENANTRY_*` variables (see the
//! README); it serves until Ctrl-C or SIGTERM, then drains the requests in flight.
//! `api move-tenant ID shared|dedicated --reason WHY` is the operator's command for moving a
//! tenant between isolation modes (the same service call as `POST /admin/tenants/{id}/isolation`),
//! rerun to resume an interrupted move.

use anyhow::Context;
use api::{ApiConfig, AppState, run, shutdown_signal};
use clap::{Parser, Subcommand, ValueEnum};
use service::tenants::Isolation;
use service::{MoveOptions, Tenantry, TenantryConfig};
use uuid::Uuid;

/// The Tenantry HTTP server, and operator commands.
#[derive(Parser)]
#[command(name = "api")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Moves a tenant between isolation modes while it keeps working (promote to its own
    /// schema, demote back): batched copy, a short verified switch, old rows removed. Needs
    /// TENANTRY_SUPERADMIN_DATABASE_URL. Rerun to resume; a finished move is a no-op.
    MoveTenant {
        /// The tenant's id.
        tenant: Uuid,
        /// The isolation to move it to.
        to: Mode,
        /// Why (audited with every step).
        #[arg(long)]
        reason: String,
        /// Who (audited).
        #[arg(long, default_value = "operator")]
        actor: String,
        /// Rows per copy batch (each its own short transaction).
        #[arg(long, default_value_t = 1000)]
        batch_rows: u32,
        /// How long the switch waits for the tenant's transactions in flight, in ms.
        #[arg(long, default_value_t = 500)]
        lock_wait_ms: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Shared,
    Dedicated,
}

async fn move_tenant(command: Command) -> anyhow::Result<()> {
    let Command::MoveTenant {
        tenant,
        to,
        reason,
        actor,
        batch_rows,
        lock_wait_ms,
    } = command;
    let config = TenantryConfig::from_env().context("reading the service configuration")?;
    let tenantry = Tenantry::connect(config)
        .await
        .context("connecting to the database")?;
    let target = match to {
        Mode::Shared => Isolation::Shared,
        Mode::Dedicated => Isolation::Dedicated,
    };
    let options = MoveOptions {
        batch_rows,
        lock_wait: std::time::Duration::from_millis(lock_wait_ms),
        ..Default::default()
    };
    let report = tenantry
        .move_tenant(&actor, &reason, tenant, target, &options)
        .await;
    tenantry.close().await.context("closing the pools")?;
    let report = report.context("moving the tenant")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .init();
    if let Some(command) = Cli::parse().command {
        return move_tenant(command).await;
    }
    let mut config = ApiConfig::from_env().context("reading the API configuration")?;
    let service_config = TenantryConfig::from_env().context("reading the service configuration")?;
    if config.ready_database_url.is_none() {
        config.ready_database_url = Some(service_config.app_url.clone());
    }
    let tenantry = Tenantry::connect(service_config)
        .await
        .context("connecting to the database")?;
    let listen = config.listen;
    if config.admin_token.is_none() {
        tracing::info!("TENANTRY_ADMIN_TOKEN is not set: /admin is disabled");
    }
    let state = AppState::new(tenantry.clone(), config);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "serving");
    run(listener, state, shutdown_signal())
        .await
        .context("serving")?;
    tenantry.close().await.context("closing the pools")?;
    Ok(())
}
