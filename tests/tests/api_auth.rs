//! Authentication and its limits over real HTTP: login, access tokens (forged, expired, of a
//! member who left), API keys (revoked, rotated, of a suspended tenant), the per-key rate
//! limit and monthly quota, metering of key requests, and the admin credential.

mod api_support;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use api_support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use uuid::Uuid;

async fn count(app: &TestApp, sql: &str, values: Vec<sea_orm::Value>) -> Result<i64> {
    let su = app.superuser().await?;
    let row = su
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

fn forge(secret: &str, claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_issues_tokens_and_refuses_everything_else() -> Result<()> {
    let app = spawn_app().await?;
    let a = app.tenant("login-a").await?;
    let b = app.tenant("login-b").await?;
    let body = expect_json(
        app.request(Method::POST, "/v1/auth/login")
            .json(&json!({ "email": a.owner_email.to_uppercase(), "password": PASSWORD, "tenant_id": a.id }))
            .send()
            .await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(
        body["token_type"] == "Bearer" && body["expires_in"] == 3600,
        "{body}"
    );
    ensure!(body["tenant_id"] == a.id.to_string() && body["user_id"] == a.owner_id.to_string());
    let tenant = app
        .get_json("/v1/tenant", body["access_token"].as_str().unwrap_or(""))
        .await?;
    ensure!(tenant["id"] == a.id.to_string());

    let refusals = [
        json!({ "email": a.owner_email, "password": "wrong", "tenant_id": a.id }),
        json!({ "email": "nobody@nowhere.test", "password": PASSWORD, "tenant_id": a.id }),
        // A real user, a real tenant, but not a member of it.
        json!({ "email": a.owner_email, "password": PASSWORD, "tenant_id": b.id }),
        json!({ "email": a.owner_email, "password": PASSWORD, "tenant_id": Uuid::new_v4() }),
    ];
    let mut details = Vec::new();
    for body in refusals {
        let resp = app
            .request(Method::POST, "/v1/auth/login")
            .json(&body)
            .send()
            .await?;
        details.push(expect_problem(resp, StatusCode::UNAUTHORIZED).await?.detail);
    }
    // One answer for all of them: nothing tells which part was wrong.
    ensure!(details.windows(2).all(|w| w[0] == w[1]), "{details:?}");
    let resp = app
        .request(Method::POST, "/v1/auth/login")
        .json(&json!({ "email": a.owner_email, "password": "", "tenant_id": a.id }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_foreign_tokens_are_refused() -> Result<()> {
    let app = spawn_app().await?;
    let a = app.tenant("tok-a").await?;
    let b = app.tenant("tok-b").await?;
    let now = chrono::Utc::now().timestamp();
    let good = forge(
        JWT_SECRET,
        json!({ "sub": a.owner_id, "tid": a.id, "iat": now, "exp": now + 600 }),
    );
    app.get_json("/v1/tenant", &good).await?;
    let cases = [
        (
            "another key",
            forge(
                "some-other-secret-of-32-bytes-or-more!",
                json!({ "sub": a.owner_id, "tid": a.id, "iat": now, "exp": now + 600 }),
            ),
        ),
        (
            "expired",
            forge(
                JWT_SECRET,
                json!({ "sub": a.owner_id, "tid": a.id, "iat": now - 7200, "exp": now - 3600 }),
            ),
        ),
        (
            "no exp",
            forge(
                JWT_SECRET,
                json!({ "sub": a.owner_id, "tid": a.id, "iat": now }),
            ),
        ),
        // Correctly signed, but the user is not a member of tenant B: the membership decides.
        (
            "foreign tenant",
            forge(
                JWT_SECRET,
                json!({ "sub": a.owner_id, "tid": b.id, "iat": now, "exp": now + 600 }),
            ),
        ),
        (
            "unknown user",
            forge(
                JWT_SECRET,
                json!({ "sub": Uuid::new_v4(), "tid": a.id, "iat": now, "exp": now + 600 }),
            ),
        ),
        (
            "malformed sub",
            forge(
                JWT_SECRET,
                json!({ "sub": "alice", "tid": a.id, "iat": now, "exp": now + 600 }),
            ),
        ),
        ("alg none", {
            let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
            parts[0] = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0".into();
            format!("{}.{}.", parts[0], parts[1])
        }),
        ("tampered", {
            let parts: Vec<&str> = good.split('.').collect();
            let claims = forge(
                JWT_SECRET,
                json!({ "sub": a.owner_id, "tid": b.id, "iat": now, "exp": now + 600 }),
            );
            format!(
                "{}.{}.{}",
                parts[0],
                claims.split('.').nth(1).unwrap_or(""),
                parts[2]
            )
        }),
    ];
    for (what, token) in cases {
        let resp = app.authed(Method::GET, "/v1/tenant", &token).send().await?;
        expect_problem(resp, StatusCode::UNAUTHORIZED)
            .await
            .with_context(|| what)?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_who_leaves_stops_working_at_once() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("leave").await?;
    let (bob, bob_token) = app.member(&t, "bob", "member").await?;
    app.get_json("/v1/projects", &bob_token).await?;
    let resp = app
        .authed(Method::DELETE, &format!("/v1/members/{bob}"), &t.token)
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::NO_CONTENT, "{}", resp.status());
    let resp = app
        .authed(Method::GET, "/v1/projects", &bob_token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_authenticate_until_revoked_or_rotated() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("keys").await?;
    let (key_id, secret) = app.api_key(&t.token, json!({ "name": "ci" })).await?;
    ensure!(secret.starts_with("tk_"));
    app.get_json("/v1/projects", &secret).await?;
    let project = app.project(&secret, "made by a key").await?;
    app.get_json(&format!("/v1/projects/{project}"), &t.token)
        .await?;

    // Rotation: the old secret stops, the new one works.
    let rotated = expect_json(
        app.authed(
            Method::POST,
            &format!("/v1/api-keys/{key_id}/rotate"),
            &t.token,
        )
        .send()
        .await?,
        StatusCode::OK,
    )
    .await?;
    let new_secret = rotated["secret"].as_str().context("secret")?.to_owned();
    let new_id: Uuid = serde_json::from_value(rotated["key"]["id"].clone())?;
    ensure!(new_secret != secret && new_id != key_id);
    expect_problem(
        app.authed(Method::GET, "/v1/projects", &secret)
            .send()
            .await?,
        StatusCode::UNAUTHORIZED,
    )
    .await?;
    app.get_json("/v1/projects", &new_secret).await?;

    // Revocation: refused on the very next request.
    let revoked = expect_json(
        app.authed(
            Method::POST,
            &format!("/v1/api-keys/{new_id}/revoke"),
            &t.token,
        )
        .send()
        .await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(!revoked["revoked_at"].is_null());
    expect_problem(
        app.authed(Method::GET, "/v1/projects", &new_secret)
            .send()
            .await?,
        StatusCode::UNAUTHORIZED,
    )
    .await?;
    // A revoked key cannot be rotated back to life.
    let resp = app
        .authed(
            Method::POST,
            &format!("/v1/api-keys/{new_id}/rotate"),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::CONFLICT).await?;

    // A member key cannot administer; an admin-scoped one can.
    let (_, member_key) = app.api_key(&t.token, json!({ "name": "member" })).await?;
    let resp = app
        .authed(Method::POST, "/v1/api-keys", &member_key)
        .json(&json!({ "name": "x" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    let (_, admin_key) = app
        .api_key(&t.token, json!({ "name": "admin", "scopes": ["admin"] }))
        .await?;
    app.api_key(&admin_key, json!({ "name": "made by a key" }))
        .await?;
    // A read-only key cannot write.
    let (_, read_key) = app
        .api_key(&t.token, json!({ "name": "reader", "scopes": ["read"] }))
        .await?;
    app.get_json("/v1/projects", &read_key).await?;
    let resp = app
        .authed(Method::POST, "/v1/projects", &read_key)
        .json(&json!({ "name": "x" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("rate").await?;
    let (_, key) = app
        .api_key(
            &t.token,
            json!({ "name": "slow", "rate_limit_per_minute": 2 }),
        )
        .await?;
    app.get_json("/v1/projects", &key).await?;
    app.get_json("/v1/projects", &key).await?;
    let resp = app.authed(Method::GET, "/v1/projects", &key).send().await?;
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .context("no Retry-After")?
        .to_str()?
        .parse()?;
    ensure!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let doc = expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    ensure!(doc.type_uri.ends_with("/rate-limited"));
    // Other credentials of the tenant are not limited by it.
    app.get_json("/v1/projects", &t.token).await?;
    let (_, other) = app
        .api_key(
            &t.token,
            json!({ "name": "other", "rate_limit_per_minute": 2 }),
        )
        .await?;
    app.get_json("/v1/projects", &other).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_quota_answers_429_and_requests_are_metered() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("quota").await?;
    let (key_id, key) = app
        .api_key(&t.token, json!({ "name": "metered", "monthly_quota": 3 }))
        .await?;
    for _ in 0..3 {
        app.get_json("/v1/projects", &key).await?;
    }
    let resp = app.authed(Method::GET, "/v1/projects", &key).send().await?;
    ensure!(resp.headers().get("retry-after").is_some());
    let doc = expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    ensure!(doc.type_uri.ends_with("/quota-exceeded"));

    // Each admitted request became a `request` usage event of the key, buffered by the meter;
    // its flush returns once they are written.
    app.state.meter().flush().await;
    let events = count(
        &app,
        "SELECT count(*) FROM tenancy.usage_events WHERE api_key_id = $1 AND kind = 'request' AND endpoint = 'GET /v1/projects' AND latency_ms IS NOT NULL",
        vec![key_id.into()],
    )
    .await?;
    ensure!(events == 3, "{events} request events");
    let summary = app
        .get_json("/v1/usage/summary?period=month", &t.token)
        .await?;
    let requests: i64 = summary["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "request")
        .map(|r| r["events"].as_i64().unwrap_or(0))
        .sum();
    ensure!(requests == 3, "{summary}");
    // Token requests are not metered.
    ensure!(
        count(
            &app,
            "SELECT count(*) FROM tenancy.usage_events WHERE api_key_id IS NULL",
            vec![]
        )
        .await?
            == 0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_tenant_is_locked_out_until_reactivated() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("suspend").await?;
    let (_, key) = app.api_key(&t.token, json!({ "name": "k" })).await?;
    let body = expect_json(
        app.admin(Method::POST, &format!("/admin/tenants/{}/suspend", t.id))
            .send()
            .await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(body["status"] == "suspended");
    for credential in [&key, &t.token] {
        expect_problem(
            app.authed(Method::GET, "/v1/tenant", credential)
                .send()
                .await?,
            StatusCode::UNAUTHORIZED,
        )
        .await?;
    }
    let resp = app
        .request(Method::POST, "/v1/auth/login")
        .json(&json!({ "email": t.owner_email, "password": PASSWORD, "tenant_id": t.id }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    let body = expect_json(
        app.admin(Method::POST, &format!("/admin/tenants/{}/reactivate", t.id))
            .send()
            .await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(body["status"] == "active");
    app.get_json("/v1/tenant", &key).await?;
    app.get_json("/v1/tenant", &t.token).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_the_token_and_a_reason_which_is_audited() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("adm").await?;
    let resp = app.request(Method::GET, "/admin/tenants").send().await?;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    let resp = app
        .authed(Method::GET, "/admin/tenants", "test-admin-token-012345678X")
        .header("x-tenantry-reason", "r")
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    // A tenant's credential is not an admin credential.
    let resp = app
        .authed(Method::GET, "/admin/tenants", &t.token)
        .header("x-tenantry-reason", "r")
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    let resp = app
        .authed(Method::GET, "/admin/tenants", ADMIN_TOKEN)
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    ensure!(doc.errors.iter().any(|e| e.field == "X-Tenantry-Reason"));
    let resp = app
        .authed(Method::GET, "/admin/tenants", ADMIN_TOKEN)
        .header("x-tenantry-reason", "   ")
        .send()
        .await?;
    expect_problem(resp, StatusCode::BAD_REQUEST).await?;

    let resp = app
        .authed(Method::GET, "/admin/tenants", ADMIN_TOKEN)
        .header("x-tenantry-reason", "ticket #4711: billing question")
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == t.id.to_string()))
    );
    let audited = count(
        &app,
        "SELECT count(*) FROM tenancy.superadmin_audit_logs WHERE actor = 'admin-token' AND reason = $1 AND action = 'admin.tenants.list'",
        vec!["ticket #4711: billing question".into()],
    )
    .await?;
    ensure!(audited == 1, "{audited} audit rows");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_is_absent_without_a_configured_token() -> Result<()> {
    let app = spawn_app_with(|c, _| c.admin_token = None).await?;
    for (method, path) in [
        (Method::GET, "/admin/tenants"),
        (Method::POST, "/admin/tenants"),
    ] {
        let resp = app
            .authed(method, path, ADMIN_TOKEN)
            .header("x-tenantry-reason", "r")
            .send()
            .await?;
        expect_problem(resp, StatusCode::NOT_FOUND).await?;
    }
    Ok(())
}

/// Flushes the meter (it returns once the buffered events are written) and checks that `n`
/// request events of `key` are in the database.
async fn assert_metered(app: &TestApp, key: Uuid, n: i64) -> Result<()> {
    app.state.meter().flush().await;
    let events = count(
        app,
        "SELECT count(*) FROM tenancy.usage_events WHERE api_key_id = $1 AND kind = 'request'",
        vec![key.into()],
    )
    .await?;
    ensure!(
        events == n,
        "{events} request events of {key}, expected {n}"
    );
    Ok(())
}

/// Mallory, an admin, creates an admin key; the owner removes her, and the key is refused on
/// its very next request. The same for Eve, demoted to member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_a_removed_or_demoted_admin_stop_working() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("mallory").await?;
    let (mallory, mallory_token) = app.member(&t, "mallory", "admin").await?;
    let (mallory_key_id, mallory_key) = app
        .api_key(
            &mallory_token,
            json!({ "name": "backdoor", "scopes": ["admin"] }),
        )
        .await?;
    app.get_json("/v1/members", &mallory_key).await?;

    let resp = app
        .authed(Method::DELETE, &format!("/v1/members/{mallory}"), &t.token)
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::NO_CONTENT, "{}", resp.status());
    for path in ["/v1/members", "/v1/projects"] {
        expect_problem(
            app.authed(Method::GET, path, &mallory_key).send().await?,
            StatusCode::UNAUTHORIZED,
        )
        .await?;
    }

    let (eve, eve_token) = app.member(&t, "eve", "admin").await?;
    let (_, eve_admin_key) = app
        .api_key(
            &eve_token,
            json!({ "name": "eve admin", "scopes": ["admin"] }),
        )
        .await?;
    let (_, eve_writer_key) = app
        .api_key(
            &eve_token,
            json!({ "name": "eve writer", "scopes": ["write"] }),
        )
        .await?;
    app.get_json("/v1/members", &eve_admin_key).await?;
    expect_json(
        app.authed(Method::PATCH, &format!("/v1/members/{eve}"), &t.token)
            .json(&json!({ "role": "member" }))
            .send()
            .await?,
        StatusCode::OK,
    )
    .await?;
    expect_problem(
        app.authed(Method::GET, "/v1/members", &eve_admin_key)
            .send()
            .await?,
        StatusCode::UNAUTHORIZED,
    )
    .await?;
    // A key that acts as a member, like Eve now, may stay.
    app.get_json("/v1/projects", &eve_writer_key).await?;
    // The owner's own key is untouched.
    let (_, owner_key) = app
        .api_key(&t.token, json!({ "name": "owner", "scopes": ["admin"] }))
        .await?;
    app.get_json("/v1/members", &owner_key).await?;
    // The owner sees who created the revoked key.
    let keys = app.get_json("/v1/api-keys", &t.token).await?;
    ensure!(
        keys["items"].as_array().is_some_and(|a| a
            .iter()
            .any(|k| k["id"] == mallory_key_id.to_string()
                && k["created_by"] == mallory.to_string()
                && !k["revoked_at"].is_null())),
        "{keys}"
    );
    Ok(())
}

/// A key's monthly quota survives rotation: the replacement counts what its predecessor used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_keeps_the_quota_already_used() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("quota-rotate").await?;
    let (key_id, key) = app
        .api_key(&t.token, json!({ "name": "metered", "monthly_quota": 2 }))
        .await?;
    // Another key of the tenant, with another name, has its own quota.
    let (_, other) = app
        .api_key(&t.token, json!({ "name": "other", "monthly_quota": 2 }))
        .await?;
    for _ in 0..2 {
        app.get_json("/v1/projects", &key).await?;
    }
    assert_metered(&app, key_id, 2).await?;
    let rotated = expect_json(
        app.authed(
            Method::POST,
            &format!("/v1/api-keys/{key_id}/rotate"),
            &t.token,
        )
        .send()
        .await?,
        StatusCode::OK,
    )
    .await?;
    let new_key = rotated["secret"].as_str().context("secret")?.to_owned();
    let resp = app
        .authed(Method::GET, "/v1/projects", &new_key)
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::TOO_MANY_REQUESTS).await?;
    ensure!(doc.type_uri.ends_with("/quota-exceeded"));
    app.get_json("/v1/projects", &other).await?;
    Ok(())
}

/// A tenant cannot give its key a rate limit above the ceiling, nor an empty quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_limits_above_the_ceiling_are_refused() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("ceiling").await?;
    for (body, field) in [
        (
            json!({ "name": "x", "rate_limit_per_minute": 6001 }),
            "rate_limit_per_minute",
        ),
        (
            json!({ "name": "x", "rate_limit_per_minute": 2147483647u32 }),
            "rate_limit_per_minute",
        ),
        (json!({ "name": "x", "monthly_quota": 0 }), "monthly_quota"),
    ] {
        let resp = app
            .authed(Method::POST, "/v1/api-keys", &t.token)
            .json(&body)
            .send()
            .await?;
        let doc = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
        ensure!(
            doc.errors.iter().any(|e| e.field == field),
            "{body}: {doc:?}"
        );
    }
    app.api_key(
        &t.token,
        json!({ "name": "edge", "rate_limit_per_minute": 6000, "monthly_quota": 1 }),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_writes_every_buffered_usage_event() -> Result<()> {
    // A flush interval no test outlives: only the shutdown flush can write these events.
    let mut app = spawn_app_with(|c, _| c.meter_flush_interval = Duration::from_secs(3600)).await?;
    let t = app.tenant("flushed").await?;
    let (key_id, key) = app
        .api_key(&t.token, json!({ "name": "k", "scopes": ["read"] }))
        .await?;
    let n = 5;
    for _ in 0..n {
        app.get_json("/v1/projects", &key).await?;
    }
    let sql =
        "SELECT count(*) FROM tenancy.usage_events WHERE api_key_id = $1 AND kind = 'request'";
    ensure!(
        count(&app, sql, vec![key_id.into()]).await? == 0,
        "events are buffered, not written per request"
    );
    ensure!(
        app.state.meter().pending(key_id) == n,
        "the quota sees the buffered events"
    );
    app.shutdown(Duration::from_secs(30)).await?;
    let written = count(&app, sql, vec![key_id.into()]).await?;
    ensure!(written == n, "{written} of {n} events written on shutdown");
    ensure!(app.state.meter().pending(key_id) == 0);
    Ok(())
}
