//! Scenario 6: a login flood against one account while another tenant reads with an API key.
//!
//! Ours: `api::build_app` with its default abuse limits, served with each connection's peer
//! address. The attacker sends wrong-password sign-ins for one account from [`ATTACKERS`]
//! connections at [`FLOOD_RATE`] per second in all (at least [`MIN_ATTEMPTS`], and on until the
//! reader is done: three times the rate of the flood that prompted this scenario, 600 in 18 s,
//! whose every attempt ran argon2); meanwhile a tenant's
//! API key reads `GET /v1/projects?limit=50` one request after another. Baseline: the same reads
//! on the same server with no flood, just before. Targets: the reader's median during the flood
//! at most 2× idle, its p99 at most 5× idle p99.
//!
//! The attacked address does not exist: sign-ins answer exactly the same whether it does or
//! not (the throttle is keyed by the address as typed, and an unknown one still runs a dummy
//! hash), so this measures the same defence a real account gets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use service::{Tenantry, TenantryConfig};
use tenantry_tests::logins::LoginRole;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::Params;
use super::report::{Cmp, Row, Scenario};
use super::setup::Fixture;
use super::stats::Stat;

pub const TITLE: &str = "Login flood: another tenant's API-key reads during vs. before";

/// The flood sends at least this many sign-ins (100 in the `--quick` smoke run).
pub const MIN_ATTEMPTS: u64 = 600;

/// Concurrent attacking connections.
pub const ATTACKERS: usize = 64;

/// Sign-ins per second of the whole flood. An unpaced flood of instant 429s measures how many
/// HTTP requests two cores shared with the load generator can answer, which no sign-in defence
/// changes (that is the per-address limit's and the network edge's work).
pub const FLOOD_RATE: f64 = 100.0;

/// Serves `app` with peer addresses (as `cargo run -p api` does) until the sender fires.
async fn serve(app: axum::Router) -> anyhow::Result<(u16, oneshot::Sender<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, app, async move {
        let _ = rx.await;
    }));
    Ok((port, tx))
}

/// `n` sequential authenticated reads; their latencies.
async fn reads(client: &reqwest::Client, url: &str, key: &str, n: usize) -> anyhow::Result<Stat> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let res = client.get(url).bearer_auth(key).send().await?;
        let status = res.status();
        res.bytes().await?;
        anyhow::ensure!(status.is_success(), "reader got HTTP {status}");
        samples.push(t.elapsed());
    }
    Ok(Stat::of(&samples))
}

/// Answers the flood got, by status.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    unauthorized: AtomicU64,
    limited: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
}

pub async fn run(p: &Params, fx: &Fixture) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(6, TITLE);
    let tenantry =
        Tenantry::connect(TenantryConfig::new(fx.db.url(LoginRole::App)).with_pool(p.pool)).await?;
    let key = super::api::issue_keys(&tenantry, fx, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no tenant in the fixture"))?
        .1;
    let secret = api::config::JwtSecret::new(vec![7u8; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config = api::ApiConfig::new(secret);
    // The reader's tenant is on the free plan in the fixture or not: give every plan room, so
    // only the flood's effect is measured.
    config.plan_rate_limits = api::auth::plans::PlanLimits {
        free: 1_000_000,
        pro: 1_000_000,
        enterprise: 1_000_000,
    };
    let workers = config.password_workers;
    let state = api::AppState::new(tenantry.clone(), config);
    let (port, stop) = serve(api::build_app(state)).await?;
    let read_url = format!("http://127.0.0.1:{port}/v1/projects?limit=50");
    let login_url = Arc::new(format!("http://127.0.0.1:{port}/v1/auth/login"));
    let reader = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let n = if p.quick { 40 } else { 400 };
    // The smoke run only shows the scenario works; its numbers mean nothing anyway.
    let min_attempts = if p.quick { 100 } else { MIN_ATTEMPTS };

    // Warm up, then the idle baseline.
    reads(&reader, &read_url, &key, n / 4 + 1).await?;
    let idle = reads(&reader, &read_url, &key, n).await?;

    // The flood: its own client per attacker (a connection each), until the reader is done
    // and at least MIN_ATTEMPTS were sent.
    let tally = Arc::new(Tally::default());
    let done = Arc::new(AtomicBool::new(false));
    let body = Arc::new(serde_json::json!({
        "email": "victim@flood.test",
        "password": "not the password",
        "tenant_id": Uuid::nil(),
    }));
    let mut attackers = Vec::with_capacity(ATTACKERS);
    let period = Duration::from_secs_f64(ATTACKERS as f64 / FLOOD_RATE);
    let t0 = tokio::time::Instant::now();
    for i in 0..ATTACKERS {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build()?;
        let (tally, done, body, url) =
            (tally.clone(), done.clone(), body.clone(), login_url.clone());
        let first = t0 + Duration::from_secs_f64(i as f64 / FLOOD_RATE);
        attackers.push(tokio::spawn(async move {
            let mut pace = tokio::time::interval_at(first, period);
            pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !done.load(Ordering::Relaxed) || tally.sent.load(Ordering::Relaxed) < min_attempts
            {
                pace.tick().await;
                tally.sent.fetch_add(1, Ordering::Relaxed);
                let status = match client.post(url.as_str()).json(&*body).send().await {
                    Ok(res) => {
                        let s = res.status();
                        let _ = res.bytes().await;
                        s
                    }
                    Err(_) => StatusCode::BAD_GATEWAY,
                };
                let counter = match status {
                    StatusCode::UNAUTHORIZED => &tally.unauthorized,
                    StatusCode::TOO_MANY_REQUESTS => &tally.limited,
                    StatusCode::SERVICE_UNAVAILABLE => &tally.busy,
                    _ => &tally.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let flood_started = Instant::now();
    // Let the flood reach full strength before the first timed read.
    while tally.sent.load(Ordering::Relaxed) < ATTACKERS as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = reads(&reader, &read_url, &key, n).await;
    done.store(true, Ordering::Relaxed);
    for a in attackers {
        let _ = a.await;
    }
    let flood_s = flood_started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let during = during?;

    sc.rows.push(
        Row::latency(
            "reader's GET /v1/projects, median: flood vs. idle",
            &during,
            &idle,
        )
        .target_ratio(Cmp::Le, 2.0),
    );
    sc.rows.push(
        Row::compared(
            "reader's GET /v1/projects, p99: flood vs. idle",
            "ms",
            during.p99_ms,
            idle.p99_ms,
        )
        .target_ratio(Cmp::Le, 5.0),
    );
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let sent = get(&tally.sent);
    sc.rows.push(Row::value(
        "sign-ins sent by the flood",
        "requests",
        sent as f64,
    ));
    sc.rows.push(
        Row::value(
            "of which answered 401 (a password was checked)",
            "requests",
            get(&tally.unauthorized) as f64,
        )
        .note("the account's free failures, plus the few that passed the check while the first were being verified"),
    );
    sc.notes.push(format!(
        "{sent} wrong-password sign-ins for one account from {ATTACKERS} connections in \
         {flood_s:.1} s (paced at {FLOOD_RATE} per second): {} answered 401, {} answered 429 (throttled: no database read, no \
         hashing), {} answered 503 (all {workers} password worker(s) busy), {} other; {n} timed \
         reads on each side",
        get(&tally.unauthorized),
        get(&tally.limited),
        get(&tally.busy),
        get(&tally.other),
    ));
    Ok(sc)
}
