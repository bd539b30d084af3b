//! The HTTP layer of the API, over real HTTP: health and readiness, request ids, problem
//! documents for every kind of bad request (never a 5xx), the body limit, the timeout, and the
//! OpenAPI document against the router's route table.

mod api_support;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, ensure};
use api::routes::{Access, ROUTES};
use api_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_request_ids() -> Result<()> {
    let app = spawn_app().await?;
    let body = expect_json(
        app.request(Method::GET, "/healthz").send().await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(body["status"] == "ok");
    let resp = app.request(Method::GET, "/readyz").send().await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["status"] == "ready" && body["database"] == "ok",
        "{body}"
    );
    // The app login lacks SELECT on seaql_migrations: "unknown", not "pending".
    ensure!(
        body["migrations"] == "current" || body["migrations"] == "unknown",
        "{body}"
    );
    // A login that may read it sees the migrations current.
    let owner = spawn_app_with(|c, db| {
        c.ready_database_url = Some(db.url(tenantry_tests::logins::LoginRole::Owner))
    })
    .await?;
    let body = expect_json(
        owner.request(Method::GET, "/readyz").send().await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(body["migrations"] == "current", "{body}");

    // Generated when absent, echoed when sane, replaced when hostile.
    let resp = app.request(Method::GET, "/healthz").send().await?;
    let generated = resp.headers()["x-request-id"].to_str()?.to_owned();
    ensure!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let resp = app
        .request(Method::GET, "/healthz")
        .header("x-request-id", "client-id-42")
        .send()
        .await?;
    ensure!(resp.headers()["x-request-id"] == "client-id-42");
    let resp = app
        .request(Method::GET, "/healthz")
        .header("x-request-id", "x".repeat(500))
        .send()
        .await?;
    ensure!(resp.headers()["x-request-id"].len() == 36);
    // A problem carries the same id.
    let resp = app
        .request(Method::GET, "/nope")
        .header("x-request-id", "trace-me")
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::NOT_FOUND).await?;
    ensure!(doc.request_id.as_deref() == Some("trace-me"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_errors_are_problems() -> Result<()> {
    let app = spawn_app().await?;
    let doc = expect_problem(
        app.request(Method::GET, "/v2/nothing").send().await?,
        StatusCode::NOT_FOUND,
    )
    .await?;
    ensure!(doc.type_uri.ends_with("/not-found"));
    let doc = expect_problem(
        app.request(Method::POST, "/healthz").send().await?,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await?;
    ensure!(doc.type_uri.ends_with("/method-not-allowed"));
    // On a tenant route, authentication comes first; with a credential, 405.
    let t = app.tenant("routing").await?;
    let resp = app
        .authed(Method::PUT, "/v1/projects", &t.token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::METHOD_NOT_ALLOWED).await?;
    // Unauthenticated: 401 with WWW-Authenticate, before anything else is looked at.
    let resp = app.request(Method::GET, "/v1/projects").send().await?;
    ensure!(resp.headers().get("www-authenticate").is_some());
    expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    for bad in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer tk_nope",
        "Bearer not.a.jwt",
        "bearer x y z",
    ] {
        let resp = app
            .request(Method::GET, "/v1/tenant")
            .header("authorization", bad)
            .send()
            .await?;
        expect_problem(resp, StatusCode::UNAUTHORIZED).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_problems() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("malformed").await?;
    let project = app.project(&t.token, "p").await?;

    // Malformed JSON → 400.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    ensure!(doc.type_uri.ends_with("/bad-request"));
    // Not JSON → 415.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .body("name=x")
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await?;
    // Wrong type → 422 naming the field.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .json(&json!({"name": 42}))
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    ensure!(doc.errors.iter().any(|e| e.field == "name"), "{doc:?}");
    // Unknown field (including a tenant_id: the tenant comes from the credential) → 422.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .json(&json!({"name": "x", "tenant_id": uuid::Uuid::new_v4()}))
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    ensure!(doc.detail.unwrap_or_default().contains("tenant_id"));
    // Missing field → 422.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .json(&json!({}))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    // Invalid enum → 422.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .json(&json!({"name": "x", "status": "exploded"}))
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    ensure!(doc.errors.iter().any(|e| e.field == "status"));
    // A JSON array instead of an object → 422.
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .json(&json!([1, 2]))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    // Malformed UUIDs in paths → 400 naming the parameter.
    for path in [
        "/v1/projects/not-a-uuid".to_owned(),
        "/v1/projects/12345".to_owned(),
        format!("/v1/projects/{project}/tasks/'%20OR%201=1--"),
        format!("/v1/projects/{project}/documents/{}", "f".repeat(300)),
    ] {
        let resp = app.authed(Method::GET, &path, &t.token).send().await?;
        let doc = expect_problem(resp, StatusCode::BAD_REQUEST).await?;
        ensure!(!doc.errors.is_empty(), "{path}: {doc:?}");
    }
    let resp = app
        .authed(Method::DELETE, "/v1/members/zzz", &t.token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    // Bad query parameters → 400.
    for query in [
        "limit=0",
        "limit=abc",
        "limit=100000",
        "cursor=garbage",
        "status=nope",
        "unknown=1",
    ] {
        let resp = app
            .authed(Method::GET, &format!("/v1/projects?{query}"), &t.token)
            .send()
            .await?;
        expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    }
    let resp = app
        .authed(Method::GET, "/v1/usage/summary?period=week", &t.token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    let resp = app
        .authed(Method::GET, "/v1/usage/summary?from=yesterday", &t.token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_never_cause_a_5xx() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("hostile").await?;
    let project = app.project(&t.token, "p").await?;
    let hostile = [
        "'; DROP TABLE projects; --",
        "\u{0}nul",
        "a\u{0}b",
        "%_\\%",
        "<script>alert(1)</script>",
        "\u{202e}gnp.exe",
        "👩‍👩‍👧‍👦",
        "\u{feff}",
        "\\x00",
        "$1",
        "{{7*7}}",
        "\r\nX-Injected: yes",
    ];
    // Long, but small enough that every body below (up to three copies) stays under the 64 KiB
    // limit: a body over it is answered 413 before it is fully sent, and the client then sees
    // a broken pipe instead of the response (oversized bodies have their own test).
    let long = "x".repeat(15_000);
    let mut all: Vec<&str> = hostile.to_vec();
    all.push(&long);
    for s in &all {
        let attempts = [
            (
                Method::POST,
                "/v1/projects".to_owned(),
                json!({ "name": s, "description": s, "metadata": { *s: s } }),
            ),
            (
                Method::PATCH,
                format!("/v1/projects/{project}"),
                json!({ "name": s }),
            ),
            (
                Method::POST,
                format!("/v1/projects/{project}/documents"),
                json!({ "title": s, "body": s, "tags": [s] }),
            ),
            (
                Method::POST,
                format!("/v1/projects/{project}/tasks"),
                json!({ "title": s }),
            ),
            (
                Method::POST,
                "/v1/usage".to_owned(),
                json!({ "kind": s, "endpoint": s, "metadata": { "k": s } }),
            ),
            (
                Method::POST,
                "/v1/members".to_owned(),
                json!({ "email": s, "role": "member" }),
            ),
            (
                Method::POST,
                "/v1/api-keys".to_owned(),
                json!({ "name": s, "scopes": [s] }),
            ),
            (Method::PATCH, "/v1/tenant".to_owned(), json!({ "name": s })),
            (
                Method::POST,
                "/v1/auth/login".to_owned(),
                json!({ "email": s, "password": s, "tenant_id": t.id }),
            ),
        ];
        for (method, path, body) in attempts {
            let resp = app
                .authed(method.clone(), &path, &t.token)
                .json(&body)
                .send()
                .await?;
            let status = resp.status();
            let text = resp.text().await?;
            assert_not_5xx(
                status,
                &format!(
                    "{method} {path} with {:?}",
                    s.chars().take(20).collect::<String>()
                ),
            )?;
            if !status.is_success() {
                assert_no_leak(&text)?;
            }
        }
        let encoded: String = s.bytes().take(200).map(|b| format!("%{b:02X}")).collect();
        for path in [
            format!("/v1/projects?name_prefix={encoded}"),
            format!("/v1/projects?cursor={encoded}"),
            format!("/v1/projects/{encoded}"),
            format!("/v1/projects/{project}/tasks?status={encoded}"),
        ] {
            let resp = app.authed(Method::GET, &path, &t.token).send().await?;
            assert_not_5xx(resp.status(), &path)?;
        }
    }
    // The LIKE wildcards in a prefix are literal: "%" matches nothing here.
    let body = app
        .get_json("/v1/projects?name_prefix=%25", &t.token)
        .await?;
    ensure!(
        body["items"].as_array().is_some_and(|a| a
            .iter()
            .all(|p| p["name"].as_str().unwrap_or("").starts_with('%'))),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() -> Result<()> {
    let app = spawn_app_with(|c, _| c.body_limit_bytes = 1024).await?;
    let t = app.tenant("big").await?;
    let resp = app
        .authed(Method::POST, "/v1/projects", &t.token)
        .json(&json!({ "name": "x", "description": "y".repeat(5000) }))
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await?;
    ensure!(doc.type_uri.ends_with("/payload-too-large"));
    // Without a Content-Length (chunked), the limit holds while reading.
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await?;
    let chunk = "z".repeat(3000);
    let request = format!(
        "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    ensure!(response.starts_with("HTTP/1.1 413"), "{response}");
    ensure!(response.contains("application/problem+json"), "{response}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out_with_a_problem() -> Result<()> {
    let app = spawn_app_with(|c, _| c.request_timeout = Duration::from_millis(300)).await?;
    // A body that never arrives: the handler waits for it until the timeout answers.
    let mut stream = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await?;
    stream
        .write_all(b"POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"em")
        .await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await??;
    let response = String::from_utf8_lossy(&buf[..n]);
    ensure!(response.starts_with("HTTP/1.1 503"), "{response}");
    ensure!(
        response.contains("application/problem+json") && response.contains("/problems/timeout"),
        "{response}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() -> Result<()> {
    let mut app = spawn_app().await?;
    let addr = app.base.trim_start_matches("http://").to_owned();
    // A request whose body is still on its way when the shutdown starts.
    let body =
        br#"{"email":"a@b.c","password":"x","tenant_id":"00000000-0000-4000-8000-000000000001"}"#;
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body[..10]).await?;
    // `Expect: 100-continue`: the server answers `100 Continue` when the handler starts reading
    // the body, so the request is observably in flight.
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte)).await??;
        ensure!(n == 1, "closed before 100 Continue: {interim:?}");
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim).into_owned();
    ensure!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    app.begin_shutdown().await?;
    let stopping = tokio::spawn(async move {
        let result = app.shutdown(Duration::from_secs(10)).await;
        (app, result)
    });
    stream.write_all(&body[10..]).await?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await??;
    ensure!(response.starts_with("HTTP/1.1 401"), "{response}");
    let (_app, result) = stopping.await?;
    result?;
    // Stopped: no new connections are served.
    ensure!(
        tokio::net::TcpStream::connect(&addr).await.is_err()
            || reqwest::get(format!("http://{addr}/healthz"))
                .await
                .is_err()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_lists_every_route() -> Result<()> {
    let app = spawn_app().await?;
    let doc: Value = expect_json(
        app.request(Method::GET, "/openapi.json").send().await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3"
    );
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in [
            "get", "post", "put", "patch", "delete", "head", "options", "trace",
        ] {
            if let Some(op) = item.get(method) {
                documented.insert((method.to_owned(), path.clone()));
                let responses = op["responses"].as_object().expect("responses");
                ensure!(
                    responses.keys().any(|k| k.starts_with('2')),
                    "{method} {path}: no success response"
                );
                ensure!(
                    responses.contains_key("500"),
                    "{method} {path}: errors not documented"
                );
            }
        }
    }
    let routed: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.verb.as_str().to_owned(), r.path.to_owned()))
        .collect();
    ensure!(
        documented == routed,
        "only documented: {:?}\nonly routed: {:?}",
        documented.difference(&routed).collect::<Vec<_>>(),
        routed.difference(&documented).collect::<Vec<_>>()
    );
    for schema in [
        "ProblemDocument",
        "ProjectView",
        "TaskView",
        "DocumentView",
        "ApiKeyView",
        "TenantView",
    ] {
        ensure!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema} missing"
        );
    }
    // And the router really has each documented route: unauthenticated calls reach the
    // route (401/400/422/415/200...), never the router's "no such route" or 405.
    for route in ROUTES {
        let path = route
            .path
            .replace(['{', '}'], "")
            .replace("user_id", "00000000-0000-4000-8000-000000000001");
        let path = ["project_id", "document_id", "task_id", "id"]
            .iter()
            .fold(path, |p, name| {
                p.replace(&format!("/{name}"), "/00000000-0000-4000-8000-000000000001")
            });
        let method = Method::from_bytes(route.verb.as_str().to_uppercase().as_bytes())?;
        let resp = app.request(method, &path).send().await?;
        let status = resp.status();
        ensure!(
            status != StatusCode::METHOD_NOT_ALLOWED,
            "{} {path}: 405",
            route.verb.as_str()
        );
        if status == StatusCode::NOT_FOUND {
            let doc: Value = resp.json().await?;
            ensure!(
                doc["detail"] != "no such route",
                "{} {path} is not routed",
                route.verb.as_str()
            );
        }
        if route.access == Access::Tenant {
            ensure!(
                status == StatusCode::UNAUTHORIZED,
                "{} {path}: {status}",
                route.verb.as_str()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_the_security_headers_and_no_server_version() -> Result<()> {
    let app = spawn_app().await?;
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/no/such/route"),
        (Method::GET, "/v1/projects"),
        (Method::POST, "/v1/auth/login"),
    ] {
        let resp = app.request(method.clone(), path).send().await?;
        let h = resp.headers();
        ensure!(
            h.get("x-content-type-options")
                .is_some_and(|v| v == "nosniff"),
            "{method} {path}: {h:?}"
        );
        let csp = h
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        ensure!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{method} {path}: {csp}"
        );
        ensure!(!h.contains_key("server"), "{method} {path}: {h:?}");
    }
    Ok(())
}

async fn preflight(app: &TestApp, origin: &str) -> Result<reqwest::Response> {
    Ok(app
        .request(Method::OPTIONS, "/v1/projects")
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_allows_only_configured_origins() -> Result<()> {
    let off = spawn_app().await?;
    let resp = preflight(&off, "https://app.example.com").await?;
    ensure!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        resp.headers()
    );
    let resp = off
        .request(Method::GET, "/healthz")
        .header("origin", "https://app.example.com")
        .send()
        .await?;
    ensure!(!resp.headers().contains_key("access-control-allow-origin"));

    let on = spawn_app_with(|c, _| {
        c.cors_origins = vec![reqwest::header::HeaderValue::from_static(
            "https://app.example.com",
        )];
    })
    .await?;
    let resp = preflight(&on, "https://app.example.com").await?;
    ensure!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    ensure!(
        h.get("access-control-allow-origin")
            .is_some_and(|v| v == "https://app.example.com"),
        "{h:?}"
    );
    ensure!(
        h.get("access-control-allow-headers")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("authorization")),
        "{h:?}"
    );
    ensure!(!h.contains_key("access-control-allow-credentials"), "{h:?}");
    let resp = preflight(&on, "https://evil.example").await?;
    ensure!(
        !resp.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        resp.headers()
    );
    // Errors carry it too, so a browser client can read the problem document.
    let resp = on
        .request(Method::GET, "/v1/projects")
        .header("origin", "https://app.example.com")
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::UNAUTHORIZED);
    ensure!(
        resp.headers()
            .get("access-control-allow-origin")
            .is_some_and(|v| v == "https://app.example.com")
    );
    Ok(())
}

/// Every `$ref` in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_references_resolve_and_constraints_are_stated() -> Result<()> {
    let app = spawn_app().await?;
    let doc: Value = expect_json(
        app.request(Method::GET, "/openapi.json").send().await?,
        StatusCode::OK,
    )
    .await?;
    let mut all = Vec::new();
    refs(&doc, &mut all);
    ensure!(!all.is_empty());
    for r in &all {
        let pointer = r.strip_prefix('#').unwrap_or(r);
        ensure!(doc.pointer(pointer).is_some(), "unresolved reference {r}");
    }
    let params = doc["paths"]["/v1/projects"]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let limit = params
        .iter()
        .find(|p| p["name"] == "limit")
        .map(|p| p["schema"].clone())
        .unwrap_or_default();
    ensure!(limit["minimum"] == 1 && limit["maximum"] == 200, "{limit}");
    let name = &doc["components"]["schemas"]["CreateProject"]["properties"]["name"];
    ensure!(
        name["minLength"] == 1 && name["maxLength"] == 200 && name["pattern"].is_string(),
        "{name}"
    );
    Ok(())
}
