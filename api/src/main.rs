//! `api`: the Tenantry HTTP server. Configuration comes from `TENANTRY_*` variables (see the
//! README); it serves until Ctrl-C or SIGTERM, then drains the requests in flight.

use anyhow::Context;
use api::{ApiConfig, AppState, run, shutdown_signal};
use service::{Tenantry, TenantryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        )
        .init();
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
