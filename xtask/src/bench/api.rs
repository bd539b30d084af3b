//! Scenario 4: the HTTP API against a bare axum + SeaORM handler.
//!
//! Ours: `api::build_app` served on 127.0.0.1, `GET /v1/projects?limit=50` with an API key
//! (authentication through the key cache, rate limit, the tenant-bound list in one round trip,
//! the request's usage event buffered by the meter). Baseline: an axum router with one handler that runs the same SELECT
//! (`WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT 51`) with plain SeaORM on a
//! superuser pool, no authentication and no tenancy, the tenant taken from a header. Both are
//! driven by the same keep-alive HTTP/1.1 client, over the same tenants.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use entity::projects;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect,
};
use service::{NewApiKey, Tenantry, TenantryConfig};
use tenantry_tests::databases::connect;
use tenantry_tests::logins::LoginRole;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::Params;
use super::load::{alternate, closed_loop, cpu_note};
use super::report::{Cmp, Row, Scenario};
use super::service_tx::contexts;
use super::setup::{Fixture, rows};
use tenantry_tests::proxy::RoundTripProxy;

/// Alternating rounds per side and cell (the order flips every round).
const ROUNDS: usize = 4;

pub const TITLE: &str = "API: list projects with API-key auth vs. bare axum + SeaORM";

/// Keys, one per tenant, with the highest rate limit a key may have.
pub(super) async fn issue_keys(
    tenantry: &Tenantry,
    fx: &Fixture,
    n: usize,
) -> anyhow::Result<Vec<(Uuid, String)>> {
    let mut out = vec![];
    for ctx in contexts(tenantry, fx, n).await? {
        let issued = tenantry
            .with_tenant(&ctx, async |tx| {
                service::api_keys::issue(
                    tx,
                    NewApiKey {
                        name: "bench api".into(),
                        scopes: vec!["read".into(), "write".into()],
                        expires_at: None,
                        // The highest limit a key may have; with one key per tenant over 64 tenants the
                        // bursts (a minute's worth each) cover every request of the run.
                        rate_limit_per_minute: Some(6000),
                        monthly_quota: None,
                    },
                )
                .await
            })
            .await?;
        out.push((ctx.tenant_id(), issued.secret));
    }
    Ok(out)
}

async fn bare_list(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, StatusCode> {
    let tenant: Uuid = headers
        .get("x-tenant")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or(StatusCode::BAD_REQUEST)?;
    let mut items = projects::Entity::find()
        .filter(projects::Column::TenantId.eq(tenant))
        .order_by(projects::Column::CreatedAt, Order::Desc)
        .order_by(projects::Column::Id, Order::Desc)
        .limit(51)
        .all(&db)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    items.truncate(50);
    Ok(axum::Json(
        serde_json::json!({ "items": items, "next_cursor": null }),
    ))
}

/// Serves `app` on a free port of 127.0.0.1 until the returned sender is dropped or fired.
async fn serve(app: Router) -> anyhow::Result<(u16, oneshot::Sender<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok((port, tx))
}

async fn get_ok(client: &reqwest::Client, req: reqwest::RequestBuilder) -> anyhow::Result<()> {
    let _ = client;
    let res = req.send().await?;
    let status = res.status();
    let body = res.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "HTTP {status}: {}",
        String::from_utf8_lossy(&body)
            .chars()
            .take(200)
            .collect::<String>()
    );
    Ok(())
}

pub async fn run(p: &Params, fx: &Fixture, port: u16) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(4, TITLE);
    let tenantry = Tenantry::connect(
        TenantryConfig::new(fx.db.url(LoginRole::App))
            .with_pool(p.pool)
            .with_auth_cache(std::time::Duration::from_secs(30)),
    )
    .await?;
    let keys = Arc::new(issue_keys(&tenantry, fx, 64).await?);
    let secret = api::config::JwtSecret::new(vec![7u8; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = api::AppState::new(tenantry.clone(), api::ApiConfig::new(secret));
    let meter = state.meter().clone();
    let (ours_port, stop_ours) = serve(api::build_app(state)).await?;
    let plain = connect(&fx.db.superuser_url(), p.pool).await?;
    let bare = Router::new()
        .route("/v1/projects", get(bare_list))
        .with_state(plain.clone());
    let (bare_port, stop_bare) = serve(bare).await?;

    let max_conc = p.concurrency.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max_conc * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let ours_url = Arc::new(format!("http://127.0.0.1:{ours_port}/v1/projects?limit=50"));
    let bare_url = Arc::new(format!("http://127.0.0.1:{bare_port}/v1/projects?limit=50"));

    // Sanity: both answer 200 with 50 items for the same tenant.
    for (url, auth) in [
        (ours_url.as_str(), Some(keys[0].1.clone())),
        (bare_url.as_str(), None),
    ] {
        let mut req = client.get(url).header("x-tenant", keys[0].0.to_string());
        if let Some(k) = auth {
            req = req.bearer_auth(k);
        }
        let res = req.send().await?;
        let status = res.status();
        let v: serde_json::Value = res.json().await.unwrap_or_default();
        let n = v
            .get("items")
            .and_then(|i| i.as_array())
            .map_or(0, Vec::len);
        anyhow::ensure!(
            status.is_success() && n > 0,
            "{url}: HTTP {status}, {n} items"
        );
    }

    let round = Duration::from_secs_f64(p.seconds / ROUNDS as f64);
    let max_ops = 5_000_000;
    for &c in &p.concurrency {
        tracing::info!(concurrency = c, "scenario 4");
        let (cl, url, k) = (client.clone(), ours_url.clone(), keys.clone());
        let ours = move |task: usize, i: u64| {
            let (cl, url) = (cl.clone(), url.clone());
            let key = k[(task * 7 + i as usize) % k.len()].1.clone();
            async move {
                let req = cl.get(url.as_str()).bearer_auth(key);
                get_ok(&cl, req).await
            }
        };
        let (cl, url, k) = (client.clone(), bare_url.clone(), keys.clone());
        let base = move |task: usize, i: u64| {
            let (cl, url) = (cl.clone(), url.clone());
            let tenant = k[(task * 7 + i as usize) % k.len()].0;
            async move {
                let req = cl.get(url.as_str()).header("x-tenant", tenant.to_string());
                get_ok(&cl, req).await
            }
        };
        let warm = Duration::from_secs_f64((p.seconds / 8.0).min(0.5));
        closed_loop(c, warm, max_ops, base.clone()).await;
        closed_loop(c, warm, max_ops, ours.clone()).await;
        let (b, o) = alternate(c, round, ROUNDS, max_ops, base, ours).await;
        for (r, side) in [(&b, "baseline"), (&o, "ours")] {
            if r.errors > 0 {
                sc.notes.push(format!(
                    "WARNING: {} {side} requests failed, first: {}",
                    r.errors,
                    r.first_error.clone().unwrap_or_default()
                ));
            }
        }
        sc.rows.push(
            Row::throughput(
                format!("GET /v1/projects?limit=50, {c} connection(s)"),
                o.rate(),
                &o.stat(),
                b.rate(),
                &b.stat(),
            )
            .target_ratio(Cmp::Ge, 0.8)
            .also(cpu_note(&o, &b)),
        );
    }
    // Write the meter's last batch, then count the events.
    meter.flush().await;
    let su = connect(&fx.db.superuser_url(), 1).await?;
    let events = rows(&su, "SELECT count(*) FROM tenancy.usage_events", vec![])
        .await?
        .first()
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0);
    su.close().await?;
    sc.notes.push(format!(
        "ours meters every API-key request as a usage event (buffered, written per tenant as \
         multi-row inserts at least once a second): {events} events were written during this \
         scenario"
    ));
    sc.notes.push(format!(
        "{} API keys over {} tenants; same pool size ({}) on both sides; request logs are off \
         (RUST_LOG's default for bench silences tower_http)",
        keys.len(),
        keys.len(),
        p.pool
    ));
    let _ = stop_ours.send(());
    let _ = stop_bare.send(());
    plain.close().await?;

    let [(ours_rt, ours_waits), (bare_rt, bare_waits)] = round_trips(fx, port, &keys[0]).await?;
    sc.rows.push(
        Row::compared(
            "round trips per request (metering included)",
            "round trips",
            ours_rt,
            bare_rt,
        )
        .note(
            "request cycles counted on the wire, the key cached; ours: the list in one round \
             trip (opening, SELECT, COMMIT pipelined: three cycles), plus the usage batch (one \
             transaction per 50 requests here); baseline: the SELECT and sqlx's release ping",
        ),
    );
    sc.rows.push(
        Row::compared(
            "waits per request (metering included)",
            "waits",
            ours_waits,
            bare_waits,
        )
        .target_value(Cmp::Le, 4.0)
        .note(
            "request cycles sent while none was unanswered: the round trips a request waits for \
             (the pipelined list is one)",
        ),
    );
    Ok(sc)
}

/// Database round trips per HTTP request, counted through a proxy: both servers get pools that
/// go through it; sequential requests, then a pause for the background metering to finish.
/// Request cycles and waits per request, ours then the bare handler's.
async fn round_trips(
    fx: &Fixture,
    port: u16,
    key: &(Uuid, String),
) -> anyhow::Result<[(f64, f64); 2]> {
    let proxy = RoundTripProxy::start(port).await?;
    let tenantry = Tenantry::connect(
        TenantryConfig::new(proxy.url(&fx.db.url(LoginRole::App), port))
            .with_pool(2)
            .with_auth_cache(std::time::Duration::from_secs(30)),
    )
    .await?;
    let secret = api::config::JwtSecret::new(vec![7u8; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = api::AppState::new(tenantry.clone(), api::ApiConfig::new(secret));
    let meter = state.meter().clone();
    let (ours_port, stop_ours) = serve(api::build_app(state)).await?;
    let plain = connect(&proxy.url(&fx.db.superuser_url(), port), 2).await?;
    let (bare_port, stop_bare) = serve(
        Router::new()
            .route("/v1/projects", get(bare_list))
            .with_state(plain.clone()),
    )
    .await?;
    let client = reqwest::Client::new();
    let n = 50u32;
    let mut out = [(0.0f64, 0.0f64); 2];
    for (slot, port, auth) in [(0, ours_port, true), (1, bare_port, false)] {
        let url = format!("http://127.0.0.1:{port}/v1/projects?limit=50");
        let send = || {
            let mut req = client.get(&url).header("x-tenant", key.0.to_string());
            if auth {
                req = req.bearer_auth(&key.1);
            }
            get_ok(&client, req)
        };
        for _ in 0..5 {
            send().await?;
        }
        meter.flush().await;
        // The pools' release pings run after the response; let the last one land.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (before, waits) = (proxy.round_trips(), proxy.waits());
        for _ in 0..n {
            send().await?;
        }
        // The batch of these requests' usage events is part of their cost: written now.
        meter.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        out[slot] = (
            (proxy.round_trips() - before) as f64 / f64::from(n),
            (proxy.waits() - waits) as f64 / f64::from(n),
        );
    }
    let _ = stop_ours.send(());
    let _ = stop_bare.send(());
    tenantry.close().await?;
    plain.close().await?;
    Ok(out)
}
