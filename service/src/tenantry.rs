//! The [`Tenantry`] handle: the app pool, the optional superadmin pool, and the only ways in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use migration::names::ENTRY_SEARCH_PATH;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use tracing::Instrument;

use crate::ServiceError;
use crate::auth_cache::AuthCache;
use crate::config::TenantryConfig;
use crate::context::TenantContext;
use crate::error::Result;
use crate::superadmin::{SuperadminGrant, SuperadminTx};
use crate::tx::TenantTx;

/// The service's entry point. Cheap to clone.
#[derive(Clone)]
pub struct Tenantry {
    pub(crate) app: DatabaseConnection,
    /// The same pool as sqlx sees it: tenant transactions open on it in one message.
    pub(crate) app_pg: sqlx::PgPool,
    pub(crate) superadmin: Option<DatabaseConnection>,
    pub(crate) config: std::sync::Arc<TenantryConfig>,
    pub(crate) last_used: std::sync::Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
    pub(crate) auth_cache: Option<std::sync::Arc<AuthCache>>,
    /// The one-round-trip path's own clients (`crate::pipeline`), connected on first use.
    pub(crate) pipeline: std::sync::Arc<crate::pipeline::PipelinePool>,
}

/// Which pool [`pool`] connects, for its sessions' startup settings.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    /// The app pool: tenant transactions, and the app's few statements outside them (all
    /// qualified). Its sessions start on the `search_path` every schema entry resets to
    /// (`public, pg_temp`), so for a shared tenant the entry finds it set and sets nothing (no
    /// transaction-local value pushed and popped, no path rebuilt by the next lookup), as the
    /// one-round-trip pool's do (m0016).
    App,
    /// The superadmin pool: left on the login's own settings.
    Superadmin,
}

async fn pool(
    url: &str,
    config: &TenantryConfig,
    max: u32,
    kind: PoolKind,
) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max)
        .min_connections(config.pool_min.min(max))
        .acquire_timeout(config.acquire_timeout)
        // No liveness ping on every checkout (a round trip per transaction, measured in
        // docs/BENCHMARKS.md); connections idle for a while are still checked.
        .test_before_acquire_if_idle_for(std::time::Duration::from_secs(30))
        .sqlx_logging(false);
    let mut startup = Vec::new();
    if kind == PoolKind::App {
        startup.push(("search_path", ENTRY_SEARCH_PATH.to_owned()));
    }
    let ms = config.statement_timeout.as_millis();
    if ms > 0 {
        startup.push(("statement_timeout", ms.to_string()));
    }
    if !startup.is_empty() {
        // Appended to the URL's own `options` (sqlx escapes the space in the path).
        opts.map_sqlx_postgres_opts(move |o| o.options(startup.clone()));
    }
    Database::connect(opts).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot connect");
        ServiceError::Unavailable("cannot connect to the database".into())
    })
}

impl Tenantry {
    /// Connects both pools.
    pub async fn connect(config: TenantryConfig) -> Result<Self> {
        let app = pool(&config.app_url, &config, config.pool_max, PoolKind::App).await?;
        if app.get_database_backend() != DbBackend::Postgres {
            return Err(ServiceError::invalid("app_url", "must be a PostgreSQL URL"));
        }
        let app_pg = app.get_postgres_connection_pool().clone();
        let superadmin = match &config.superadmin_url {
            Some(url) => Some(pool(url, &config, 4, PoolKind::Superadmin).await?),
            None => None,
        };
        let auth_cache = config.auth_cache_ttl.map(|ttl| {
            let cache = AuthCache::new(ttl, config.auth_heartbeat_interval);
            let url = config.auth_listen_url.as_ref().unwrap_or(&config.app_url);
            // Heartbeats go through the app pool: the path other processes' changes take.
            cache.listen(url.clone(), app_pg.clone());
            cache
        });
        let pipeline = std::sync::Arc::new(crate::pipeline::PipelinePool::new(
            &config.app_url,
            config.pool_max,
            config.acquire_timeout,
            config.statement_timeout,
            config.prepared_statements,
        )?);
        Ok(Self {
            app,
            app_pg,
            pipeline,
            auth_cache,
            superadmin,
            config: std::sync::Arc::new(config),
            last_used: Default::default(),
        })
    }

    /// Begins a tenant-bound transaction for `ctx`.
    pub async fn begin(&self, ctx: &TenantContext) -> Result<TenantTx> {
        TenantTx::begin(&self.app_pg, ctx.clone())
            .instrument(tracing::debug_span!("tenant_tx", tenant_id = %ctx.tenant_id()))
            .await
    }

    /// Runs `work` in a tenant-bound transaction: committed when it returns `Ok`, rolled back
    /// otherwise.
    pub async fn with_tenant<T>(
        &self,
        ctx: &TenantContext,
        work: impl AsyncFnOnce(&TenantTx) -> Result<T>,
    ) -> Result<T> {
        let span = tracing::info_span!("tenant", tenant_id = %ctx.tenant_id());
        async {
            let tx = TenantTx::begin(&self.app_pg, ctx.clone()).await?;
            let out = work(&tx).await;
            match out {
                Ok(value) => {
                    tx.commit().await?;
                    Ok(value)
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(e)
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Opens the superadmin escape: named, with an actor and a reason, audited in the same
    /// transaction. [`ServiceError::Unavailable`] when no superadmin pool is configured.
    pub async fn superadmin(&self, grant: SuperadminGrant<'_>) -> Result<SuperadminTx> {
        let pool = self.superadmin.as_ref().ok_or_else(|| {
            ServiceError::Unavailable("the superadmin pool is not configured".into())
        })?;
        SuperadminTx::begin(pool, grant).await
    }

    /// The API-key authentication cache, when configured.
    pub fn auth_cache(&self) -> Option<&AuthCache> {
        self.auth_cache.as_deref()
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.app.ping().await?)
    }

    /// Connections idle in the app pool right now (for metrics; tests use it to know that a
    /// released connection is back, its release ping answered).
    pub fn idle_connections(&self) -> usize {
        self.app_pg.num_idle()
    }

    /// Closes the pools (the app pool, the one-round-trip path's, the superadmin pool).
    pub async fn close(self) -> Result<()> {
        self.pipeline.close().await;
        self.app.close().await?;
        if let Some(sa) = self.superadmin {
            sa.close().await?;
        }
        Ok(())
    }
}
