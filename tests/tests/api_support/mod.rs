//! Shared by the `api_*` tests: [`spawn_app`] starts the real server (the `api` crate's
//! router and `serve`) on a free loopback port over a fresh migrated database, and the helpers
//! drive it over HTTP with reqwest, the way a client would.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use api::config::{AdminToken, JwtSecret};
use api::problem::ProblemDocument;
use api::{ApiConfig, AppState};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use service::{Tenantry, TenantryConfig};
use tenantry_tests::TestDb;
use tenantry_tests::logins::LoginRole;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The admin token every test server accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The token key of every test server (tests forge tokens with it).
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";
/// The password of every user the tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The database behind it.
    pub db: TestDb,
    /// The server's state (its meter to flush; its pools, limiters and password pool, for
    /// tests that must hold resources the server shares).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    shutdown_seen: Option<oneshot::Receiver<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A server with the test defaults.
pub async fn spawn_app() -> Result<TestApp> {
    spawn_app_with(|_, _| {}).await
}

/// A server whose configuration `adjust` may change first (it sees the database too).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut ApiConfig, &TestDb)) -> Result<TestApp> {
    spawn_app_with_service(|_| {}, adjust).await
}

/// A server whose service configuration (pool, timeouts) `service` may change first, and
/// whose API configuration `adjust` may change.
pub async fn spawn_app_with_service(
    service: impl FnOnce(&mut TenantryConfig),
    adjust: impl FnOnce(&mut ApiConfig, &TestDb),
) -> Result<TestApp> {
    let db = tenantry_tests::migrated_db().await?;
    let mut service_config = TenantryConfig::new(db.url(LoginRole::App))
        .with_superadmin(db.url(LoginRole::Superadmin))
        .with_pool(4);
    service(&mut service_config);
    let tenantry = Tenantry::connect(service_config).await?;
    let mut config = ApiConfig::new(JwtSecret::new(JWT_SECRET.as_bytes().to_vec())?);
    config.admin_token = Some(AdminToken::new(ADMIN_TOKEN)?);
    config.ready_database_url = Some(db.url(LoginRole::App));
    // Tests sign in from 127.0.0.1 over and over; the per-address limits have their own tests.
    config.address_rate_limit_per_minute = 100_000;
    config.login_address_policy.free_failures = 10_000;
    adjust(&mut config, &db);
    let state = AppState::new(tenantry, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let (seen_tx, seen_rx) = oneshot::channel::<()>();
    // The server polls this future; once it completes, the server has seen the shutdown.
    let server = tokio::spawn(api::run(listener, state.clone(), async move {
        let _ = rx.await;
        let _ = seen_tx.send(());
    }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    Ok(TestApp {
        base: format!("http://{addr}"),
        client,
        db,
        state,
        shutdown: Some(tx),
        shutdown_seen: Some(seen_rx),
        server: Some(server),
    })
}

/// A provisioned tenant with its owner signed in.
#[derive(Debug, Clone)]
pub struct TenantFixture {
    /// The tenant.
    pub id: Uuid,
    /// The owner.
    pub owner_id: Uuid,
    /// The owner's e-mail.
    pub owner_email: String,
    /// The owner's access token.
    pub token: String,
}

impl TestApp {
    /// Triggers graceful shutdown and returns once the server has seen it (it no longer
    /// accepts connections and is draining the requests in flight).
    pub async fn begin_shutdown(&mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(seen) = self.shutdown_seen.take() {
            seen.await
                .context("the server ended without seeing the shutdown")?;
        }
        Ok(())
    }

    /// Triggers graceful shutdown and waits (at most `within`) for the server to finish.
    pub async fn shutdown(&mut self, within: Duration) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(within, server)
                .await
                .context("the server did not stop in time")???;
        }
        Ok(())
    }

    /// A request to `path` (relative to the server).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// A request with `Authorization: Bearer <credential>`.
    pub fn authed(&self, method: Method, path: &str, credential: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(credential)
    }

    /// A superadmin request (admin token and a reason).
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.authed(method, path, ADMIN_TOKEN)
            .header("x-tenantry-reason", "integration test")
    }

    /// Provisions a tenant through `/admin` and signs its new owner in.
    pub async fn tenant(&self, slug: &str) -> Result<TenantFixture> {
        let owner_email = format!("owner@{slug}.test");
        let resp = self
            .admin(Method::POST, "/admin/tenants")
            .json(&json!({
                "name": format!("Tenant {slug}"),
                "slug": slug,
                "plan": "pro",
                "owner_email": owner_email,
                "owner_full_name": "Owner",
                "owner_password": PASSWORD,
            }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        let id: Uuid = serde_json::from_value(body["tenant"]["id"].clone())?;
        let owner_id: Uuid = serde_json::from_value(body["owner_user_id"].clone())?;
        let token = self.login(&owner_email, PASSWORD, id).await?;
        Ok(TenantFixture {
            id,
            owner_id,
            owner_email,
            token,
        })
    }

    /// Signs in; returns the access token.
    pub async fn login(&self, email: &str, password: &str, tenant: Uuid) -> Result<String> {
        let resp = self
            .request(Method::POST, "/v1/auth/login")
            .json(&json!({ "email": email, "password": password, "tenant_id": tenant }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::OK).await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access_token")
    }

    /// Creates a user (through a throwaway tenant's provisioning, the only API that creates
    /// users) and adds them to `tenant` with `role`; returns the user's id and token there.
    pub async fn member(
        &self,
        tenant: &TenantFixture,
        name: &str,
        role: &str,
    ) -> Result<(Uuid, String)> {
        let email = format!("{name}@people.test");
        let scratch = format!("home-{name}");
        let resp = self
            .admin(Method::POST, "/admin/tenants")
            .json(&json!({
                "name": format!("Home of {name}"),
                "slug": scratch,
                "owner_email": email,
                "owner_password": PASSWORD,
            }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        let user_id: Uuid = serde_json::from_value(body["owner_user_id"].clone())?;
        let resp = self
            .authed(Method::POST, "/v1/members", &tenant.token)
            .json(&json!({ "email": email, "role": role }))
            .send()
            .await?;
        expect_json(resp, StatusCode::CREATED).await?;
        let token = self.login(&email, PASSWORD, tenant.id).await?;
        Ok((user_id, token))
    }

    /// Issues an API key with `body`; returns `(key id, secret)`.
    pub async fn api_key(&self, token: &str, body: Value) -> Result<(Uuid, String)> {
        let resp = self
            .authed(Method::POST, "/v1/api-keys", token)
            .json(&body)
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        let id: Uuid = serde_json::from_value(body["key"]["id"].clone())?;
        let secret = body["secret"].as_str().context("no secret")?.to_owned();
        Ok((id, secret))
    }

    /// Creates a project; returns its id.
    pub async fn project(&self, credential: &str, name: &str) -> Result<Uuid> {
        let resp = self
            .authed(Method::POST, "/v1/projects", credential)
            .json(&json!({ "name": name }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        Ok(serde_json::from_value(body["id"].clone())?)
    }

    /// Creates a document in a project; returns its id.
    pub async fn document(&self, credential: &str, project: Uuid, title: &str) -> Result<Uuid> {
        let resp = self
            .authed(
                Method::POST,
                &format!("/v1/projects/{project}/documents"),
                credential,
            )
            .json(&json!({ "title": title, "body": "text", "tags": ["t"] }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        Ok(serde_json::from_value(body["id"].clone())?)
    }

    /// Creates a task in a project; returns its id.
    pub async fn task(&self, credential: &str, project: Uuid, title: &str) -> Result<Uuid> {
        let resp = self
            .authed(
                Method::POST,
                &format!("/v1/projects/{project}/tasks"),
                credential,
            )
            .json(&json!({ "title": title }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        Ok(serde_json::from_value(body["id"].clone())?)
    }

    /// GET with a credential, expecting 200; returns the body.
    pub async fn get_json(&self, path: &str, credential: &str) -> Result<Value> {
        let resp = self.authed(Method::GET, path, credential).send().await?;
        expect_json(resp, StatusCode::OK).await
    }

    /// A superuser connection to the database (sees every tenant's rows).
    pub async fn superuser(&self) -> Result<DatabaseConnection> {
        Ok(self.db.connect_superuser().await?)
    }
}

/// Expects `status` and a JSON body.
pub async fn expect_json(resp: Response, status: StatusCode) -> Result<Value> {
    let got = resp.status();
    let text = resp.text().await?;
    ensure!(got == status, "expected {status}, got {got}: {text}");
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))
}

/// Expects a problem document with `status`: the media type, the type URI, the title, the
/// request id (echoed in `x-request-id` too), and never a trace of SQL.
pub async fn expect_problem(resp: Response, status: StatusCode) -> Result<ProblemDocument> {
    let got = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let header_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await?;
    ensure!(got == status, "expected {status}, got {got}: {text}");
    ensure!(
        content_type == "application/problem+json",
        "content type {content_type:?}: {text}"
    );
    let doc: ProblemDocument =
        serde_json::from_str(&text).with_context(|| format!("not a problem: {text}"))?;
    ensure!(
        doc.status == status.as_u16(),
        "status field {} in {text}",
        doc.status
    );
    ensure!(
        doc.type_uri.starts_with("https://tenantry.dev/problems/"),
        "type {}",
        doc.type_uri
    );
    ensure!(!doc.title.is_empty());
    ensure!(
        doc.request_id.is_some() && doc.request_id == header_id,
        "request id {:?} vs header {header_id:?}",
        doc.request_id
    );
    assert_no_leak(&text)?;
    Ok(doc)
}

/// Fails when a body looks like it carries database internals.
pub fn assert_no_leak(text: &str) -> Result<()> {
    let lower = text.to_lowercase();
    for needle in [
        "sqlstate",
        "constraint",
        "select ",
        "insert into",
        "violates",
        "pkey",
        "fkey",
        "tenant_users",
        "postgres",
        "sqlx",
    ] {
        ensure!(!lower.contains(needle), "response leaks {needle:?}: {text}");
    }
    Ok(())
}

/// The ends of a response that must never be: a 5xx.
pub fn assert_not_5xx(status: StatusCode, what: &str) -> Result<()> {
    ensure!(!status.is_server_error(), "{what} answered {status}");
    Ok(())
}
