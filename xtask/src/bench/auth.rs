//! Scenario 5: what API-key authentication costs per request, and how long
//! `cargo xtask test-isolation` takes.

use std::time::{Duration, Instant};

use service::{NewApiKey, Tenantry, TenantryConfig};
use tenantry_tests::logins::LoginRole;

use super::Params;
use super::report::{Row, Scenario, Status};
use super::service_tx::{contexts, service_read};
use super::setup::Fixture;
use super::stats::Stat;
use tenantry_tests::proxy::RoundTripProxy;

pub const TITLE: &str = "API-key authentication cost; test-isolation wall time";

/// Issues a key for the first bench tenant (as its owner) and returns the presented secret.
pub async fn issue_key(tenantry: &Tenantry, fx: &Fixture, name: &str) -> anyhow::Result<String> {
    let ctx = contexts(tenantry, fx, 1).await?.remove(0);
    let issued = tenantry
        .with_tenant(&ctx, async |tx| {
            service::api_keys::issue(
                tx,
                NewApiKey {
                    name: name.into(),
                    scopes: vec!["read".into(), "write".into()],
                    expires_at: None,
                    rate_limit_per_minute: None,
                    monthly_quota: None,
                },
            )
            .await
        })
        .await?;
    Ok(issued.secret)
}

pub async fn run(p: &Params, fx: &Fixture, port: u16) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(5, TITLE);
    let tenantry =
        Tenantry::connect(TenantryConfig::new(fx.db.url(LoginRole::App)).with_pool(1)).await?;
    let secret = issue_key(&tenantry, fx, "bench auth").await?;
    let ctx = contexts(&tenantry, fx, 1).await?.remove(0);
    let n = p.iterations.max(10);
    let (mut auth, mut read) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n + n / 10 {
        // Alternate the two so drift hits both alike.
        let t = Instant::now();
        let principal = tenantry.authenticate_api_key(&secret).await?;
        let a = t.elapsed();
        let t = Instant::now();
        service_read(&tenantry, &principal.context).await?;
        let r = t.elapsed();
        if i >= n / 10 {
            auth.push(a);
            read.push(r);
        }
    }
    let bad = format!("{}0", &secret[..secret.len() - 1]);
    let mut rejected = Vec::with_capacity(n / 4);
    for _ in 0..(n / 4).max(5) {
        let t = Instant::now();
        let res = tenantry.authenticate_api_key(&bad).await;
        rejected.push(t.elapsed());
        anyhow::ensure!(res.is_err(), "a wrong secret was accepted");
    }
    let auth_s = Stat::of(&auth);
    let read_s = Stat::of(&read);
    sc.rows.push(
        Row::latency_alone("authenticate_api_key (valid key)", &auth_s).note(
            "SHA-256 + the SECURITY DEFINER lookup; last_used_at is written at most once a minute",
        ),
    );
    sc.rows.push(Row::latency_alone(
        "authenticate_api_key (wrong secret, rejected)",
        &Stat::of(&rejected),
    ));
    sc.rows.push(
        Row::latency(
            "authenticated read (auth + list 50) vs the list alone",
            &Stat {
                median_ms: auth_s.median_ms + read_s.median_ms,
                p95_ms: auth_s.p95_ms + read_s.p95_ms,
                p99_ms: auth_s.p99_ms + read_s.p99_ms,
                ..auth_s
            },
            &read_s,
        )
        .note("medians added; the ratio is what authentication adds to a typical request"),
    );
    let _ = ctx;
    tenantry.close().await?;

    // Round trips of one authentication, on the wire.
    let proxy = RoundTripProxy::start(port).await?;
    let t = Tenantry::connect(
        TenantryConfig::new(proxy.url(&fx.db.url(LoginRole::App), port)).with_pool(1),
    )
    .await?;
    for _ in 0..5 {
        t.authenticate_api_key(&secret).await?;
    }
    let before = proxy.round_trips();
    let k = 50;
    for _ in 0..k {
        t.authenticate_api_key(&secret).await?;
    }
    let rt = (proxy.round_trips() - before) as f64 / f64::from(k);
    t.close().await?;
    sc.rows.push(
        Row::value("round trips per authentication", "round trips", rt)
            .note("acquire ping, the lookup, release ping (off the caller's path)"),
    );

    match isolation_wall_time(p).await {
        Ok(Some((secs, ok))) => sc.rows.push(
            Row::value("`cargo xtask test-isolation` wall time", "s", secs).note(if ok {
                "the built binary run as a subprocess; the matrix passed"
            } else {
                "the built binary run as a subprocess; it FAILED (see its output)"
            }),
        ),
        Ok(None) => sc
            .notes
            .push("test-isolation wall time: skipped (--no-isolation or --quick)".into()),
        Err(e) => sc
            .notes
            .push(format!("test-isolation wall time: could not run it: {e:#}")),
    }
    if sc.rows.is_empty() {
        sc.status = Status::Failed("nothing measured".into());
    }
    Ok(sc)
}

/// Runs this binary's `test-isolation` as a subprocess (its own ephemeral cluster) and times it.
async fn isolation_wall_time(p: &Params) -> anyhow::Result<Option<(f64, bool)>> {
    if !p.isolation {
        return Ok(None);
    }
    let exe = std::env::current_exe()?;
    tracing::info!(exe = %exe.display(), "scenario 5: timing test-isolation");
    let t = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new(&exe)
            .arg("test-isolation")
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!(
            "test-isolation failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Some((secs, out.status.success())))
}
