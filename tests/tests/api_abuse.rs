//! Hostile load against the real server: failed-login throttling per account and per client
//! address (before any password work, with no account enumeration), the bounded password pool's
//! fast refusal, the per-tenant plan limit over all of a tenant's keys, the per-address limit of
//! the unauthenticated routes, and the fast 503 when every pooled connection is taken.

mod api_support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use api_support::*;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// Lockouts long enough that none expires while a test runs.
const LONG: Duration = Duration::from_secs(600);

fn login_body(email: &str, password: &str, tenant: Uuid) -> Value {
    json!({ "email": email, "password": password, "tenant_id": tenant })
}

async fn attempt(req: RequestBuilder) -> Result<(StatusCode, Option<String>, Value)> {
    let resp = req.send().await?;
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Ok((status, retry, body))
}

fn login(app: &TestApp, body: &Value) -> RequestBuilder {
    app.request(Method::POST, "/v1/auth/login").json(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_account_the_same_way_whether_it_exists_or_not() -> Result<()> {
    let app = spawn_app_with(|c, _| {
        c.login_account_policy.free_failures = 3;
        c.login_account_policy.base_lockout = LONG;
        c.login_account_policy.max_lockout = LONG;
    })
    .await?;
    let a = app.tenant("throttle-a").await?;
    let mut transcripts = Vec::new();
    for email in [a.owner_email.as_str(), "ghost@nowhere.test"] {
        let wrong = login_body(email, "wrong password", a.id);
        let mut seen = Vec::new();
        for _ in 0..6 {
            let (status, retry, body) = attempt(login(&app, &wrong)).await?;
            seen.push((
                status,
                retry.is_some(),
                body["type"].clone(),
                body["detail"].clone(),
            ));
        }
        transcripts.push(seen);
    }
    // Four failures answered 401 (three free, the fourth starts the lockout), then 429 with
    // Retry-After; identical for the real account and the unknown one.
    let real = &transcripts[0];
    ensure!(
        real[..4].iter().all(|s| s.0 == StatusCode::UNAUTHORIZED)
            && real[4..]
                .iter()
                .all(|s| s.0 == StatusCode::TOO_MANY_REQUESTS && s.1),
        "{real:?}"
    );
    ensure!(
        real[4].2 == "https://tenantry.dev/problems/rate-limited",
        "{real:?}"
    );
    ensure!(transcripts[0] == transcripts[1], "{transcripts:?}");

    // Locked means locked: the right password is refused too, and without any password work:
    // with every password worker held, the answer is still the throttle's 429, not the pool's 503.
    let right = login_body(&a.owner_email, PASSWORD, a.id);
    let mut held = Vec::new();
    while let Some(p) = app.state.password_pool().try_acquire() {
        held.push(p);
    }
    let resp = login(&app, &right).send().await?;
    ensure!(resp.headers().contains_key("retry-after"));
    expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    drop(held);

    // Another account from the same address is not locked.
    let b = app.tenant("throttle-b").await?;
    let (status, ..) = attempt(login(&app, &login_body(&b.owner_email, PASSWORD, b.id))).await?;
    ensure!(status == StatusCode::OK, "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_clears_the_accounts_failures() -> Result<()> {
    let app = spawn_app_with(|c, _| {
        c.login_account_policy.free_failures = 3;
        c.login_account_policy.base_lockout = LONG;
        c.login_account_policy.max_lockout = LONG;
    })
    .await?;
    let a = app.tenant("clears").await?;
    let wrong = login_body(&a.owner_email, "wrong password", a.id);
    for _ in 0..3 {
        ensure!(attempt(login(&app, &wrong)).await?.0 == StatusCode::UNAUTHORIZED);
    }
    app.login(&a.owner_email, PASSWORD, a.id).await?;
    // Without the reset, the second of these would find the account locked (4 failures).
    for _ in 0..2 {
        let (status, ..) = attempt(login(&app, &wrong)).await?;
        ensure!(status == StatusCode::UNAUTHORIZED, "{status}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_client_address_across_accounts() -> Result<()> {
    let app = spawn_app_with(|c, _| {
        c.login_address_policy.free_failures = 2;
        c.login_address_policy.base_lockout = LONG;
        c.login_address_policy.max_lockout = LONG;
    })
    .await?;
    let tenant = Uuid::new_v4();
    for n in 0..3 {
        let body = login_body(&format!("spray{n}@x.test"), "guess", tenant);
        let (status, ..) = attempt(login(&app, &body)).await?;
        ensure!(status == StatusCode::UNAUTHORIZED, "{n}: {status}");
    }
    // A fresh account, a forged X-Forwarded-For: the socket's address is locked all the same,
    // since no proxy is trusted.
    let body = login_body("fresh@x.test", "guess", tenant);
    let resp = login(&app, &body)
        .header("x-forwarded-for", "198.51.100.77")
        .send()
        .await?;
    expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client() -> Result<()> {
    let app = spawn_app_with(|c, _| {
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
        c.login_address_policy.free_failures = 1;
        c.login_address_policy.base_lockout = LONG;
        c.login_address_policy.max_lockout = LONG;
    })
    .await?;
    let tenant = Uuid::new_v4();
    let from = |n: u32, client: &str| {
        login(&app, &login_body(&format!("p{n}@x.test"), "guess", tenant))
            .header("x-forwarded-for", client)
    };
    // 203.0.113.7 fails twice and is locked; 203.0.113.8, behind the same proxy, is not.
    ensure!(attempt(from(1, "203.0.113.7")).await?.0 == StatusCode::UNAUTHORIZED);
    ensure!(attempt(from(2, "203.0.113.7")).await?.0 == StatusCode::UNAUTHORIZED);
    ensure!(attempt(from(3, "203.0.113.7")).await?.0 == StatusCode::TOO_MANY_REQUESTS);
    ensure!(attempt(from(4, "203.0.113.8")).await?.0 == StatusCode::UNAUTHORIZED);
    // A client cannot hide behind an address it writes itself: the proxy appends the real one.
    ensure!(attempt(from(5, "203.0.113.8, 203.0.113.7")).await?.0 == StatusCode::TOO_MANY_REQUESTS);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_password_pool_refuses_at_once() -> Result<()> {
    let app = spawn_app_with(|c, _| c.password_workers = 2).await?;
    let a = app.tenant("pool").await?;
    let mut held = Vec::new();
    while let Some(p) = app.state.password_pool().try_acquire() {
        held.push(p);
    }
    ensure!(held.len() == 2, "{} permits", held.len());
    let body = login_body(&a.owner_email, PASSWORD, a.id);
    let resp = login(&app, &body).send().await?;
    ensure!(
        resp.headers().get("retry-after").is_some_and(|v| v == "1"),
        "{:?}",
        resp.headers()
    );
    let problem = expect_problem(resp, StatusCode::SERVICE_UNAVAILABLE).await?;
    ensure!(problem.type_uri.ends_with("/unavailable"), "{problem:?}");
    // A refusal for lack of capacity is not a failure of the account.
    drop(held);
    app.login(&a.owner_email, PASSWORD, a.id).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_keys_together_stay_within_its_plan() -> Result<()> {
    // Fixtures are on the `pro` plan.
    let app = spawn_app_with(|c, _| c.plan_rate_limits.pro = 4).await?;
    let a = app.tenant("plan-a").await?;
    let b = app.tenant("plan-b").await?;
    let (_, k1) = app
        .api_key(
            &a.token,
            json!({ "name": "one", "rate_limit_per_minute": 1000 }),
        )
        .await?;
    let (_, k2) = app
        .api_key(
            &a.token,
            json!({ "name": "two", "rate_limit_per_minute": 1000 }),
        )
        .await?;
    let (_, kb) = app.api_key(&b.token, json!({ "name": "b" })).await?;
    for key in [&k1, &k2, &k1, &k2] {
        app.get_json("/v1/projects", key).await?;
    }
    for key in [&k1, &k2] {
        let resp = app.authed(Method::GET, "/v1/projects", key).send().await?;
        ensure!(resp.headers().contains_key("retry-after"));
        let problem = expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
        ensure!(
            problem
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("pro plan")),
            "{problem:?}"
        );
    }
    // Another tenant's allowance is its own.
    app.get_json("/v1/projects", &kb).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_routes_are_limited_per_address_but_liveness_is_not() -> Result<()> {
    let app = spawn_app_with(|c, _| c.address_rate_limit_per_minute = 3).await?;
    for _ in 0..3 {
        expect_json(
            app.request(Method::GET, "/openapi.json").send().await?,
            StatusCode::OK,
        )
        .await?;
    }
    let resp = app.request(Method::GET, "/openapi.json").send().await?;
    ensure!(resp.headers().contains_key("retry-after"));
    expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    let resp = login(&app, &login_body("x@y.test", "z", Uuid::new_v4()))
        .send()
        .await?;
    expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    for _ in 0..10 {
        let resp = app.request(Method::GET, "/healthz").send().await?;
        ensure!(resp.status() == StatusCode::OK, "{}", resp.status());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_fast_and_liveness_stays_up() -> Result<()> {
    let app = spawn_app_with_service(
        |s| s.acquire_timeout = Duration::from_millis(300),
        |_, _| {},
    )
    .await?;
    let a = app.tenant("exhausted").await?;
    let (_, key) = app.api_key(&a.token, json!({ "name": "k" })).await?;
    app.get_json("/v1/projects", &key).await?;
    let principal = app
        .state
        .tenantry()
        .authenticate_api_key(&key)
        .await
        .context("authenticating the key directly")?;
    // Hold every pooled connection (the test pool has 4) in open transactions.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(app.state.tenantry().begin(&principal.context).await?);
    }
    let resp = app.authed(Method::GET, "/v1/projects", &key).send().await?;
    ensure!(
        resp.headers().contains_key("retry-after"),
        "{:?}",
        resp.headers()
    );
    let problem = expect_problem(resp, StatusCode::SERVICE_UNAVAILABLE).await?;
    ensure!(problem.type_uri.ends_with("/unavailable"), "{problem:?}");
    for _ in 0..3 {
        let resp = app.request(Method::GET, "/healthz").send().await?;
        ensure!(resp.status() == StatusCode::OK, "{}", resp.status());
    }
    drop(held);
    app.get_json("/v1/projects", &key).await?;
    Ok(())
}
