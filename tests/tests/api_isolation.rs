//! Cross-tenant attempts through every route that takes an id: with tenant A's credentials (an
//! owner's token and an admin-scoped API key), every id of tenant B answers exactly like an id
//! that does not exist (404, same body), never 403, and B's data is unchanged afterwards.
//! Lists, summaries and forged cursors show A nothing of B.

mod api_support;

use anyhow::{Context, Result, ensure};
use api::pagination::Cursor;
use api_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// B's rows as B sees them.
async fn snapshot(app: &TestApp, b: &TenantFixture, paths: &[String]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for path in paths {
        out.push(app.get_json(path, &b.token).await?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_ids_are_not_found_through_every_route() -> Result<()> {
    let app = spawn_app().await?;
    let a = app.tenant("attacker").await?;
    let b = app.tenant("victim").await?;
    let (bob, _) = app.member(&b, "bob", "member").await?;
    let (b_key_id, b_key) = app
        .api_key(&b.token, json!({ "name": "victim key" }))
        .await?;
    let pb = app.project(&b.token, "secret plans").await?;
    let db = app.document(&b.token, pb, "secret doc").await?;
    let tb = app.task(&b.token, pb, "secret task").await?;
    let pa = app.project(&a.token, "mine").await?;
    let (_, a_key) = app
        .api_key(
            &a.token,
            json!({ "name": "attacker key", "scopes": ["admin"] }),
        )
        .await?;

    let b_paths = vec![
        format!("/v1/projects/{pb}"),
        format!("/v1/projects/{pb}/documents/{db}"),
        format!("/v1/projects/{pb}/tasks/{tb}"),
        "/v1/members".to_owned(),
        "/v1/api-keys".to_owned(),
        "/v1/tenant".to_owned(),
    ];
    let before = snapshot(&app, &b, &b_paths).await?;

    let ghost = Uuid::new_v4();
    // (method, path with B's ids, the same path with unknown ids, body)
    let attempts: Vec<(Method, String, String, Option<Value>)> = vec![
        (
            Method::GET,
            format!("/v1/projects/{pb}"),
            format!("/v1/projects/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{pb}"),
            format!("/v1/projects/{ghost}"),
            Some(json!({ "name": "pwned" })),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{pb}"),
            format!("/v1/projects/{ghost}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/projects/{pb}/documents"),
            format!("/v1/projects/{ghost}/documents"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/projects/{pb}/documents"),
            format!("/v1/projects/{ghost}/documents"),
            Some(json!({ "title": "planted" })),
        ),
        (
            Method::GET,
            format!("/v1/projects/{pb}/documents/{db}"),
            format!("/v1/projects/{ghost}/documents/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{pb}/documents/{db}"),
            format!("/v1/projects/{ghost}/documents/{ghost}"),
            Some(json!({ "title": "pwned" })),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{pb}/documents/{db}"),
            format!("/v1/projects/{ghost}/documents/{ghost}"),
            None,
        ),
        // A's own project with B's document or task id.
        (
            Method::GET,
            format!("/v1/projects/{pa}/documents/{db}"),
            format!("/v1/projects/{pa}/documents/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{pa}/documents/{db}"),
            format!("/v1/projects/{pa}/documents/{ghost}"),
            Some(json!({ "title": "pwned" })),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{pa}/documents/{db}"),
            format!("/v1/projects/{pa}/documents/{ghost}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/projects/{pb}/tasks"),
            format!("/v1/projects/{ghost}/tasks"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/projects/{pb}/tasks"),
            format!("/v1/projects/{ghost}/tasks"),
            Some(json!({ "title": "planted" })),
        ),
        (
            Method::GET,
            format!("/v1/projects/{pb}/tasks/{tb}"),
            format!("/v1/projects/{ghost}/tasks/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{pb}/tasks/{tb}"),
            format!("/v1/projects/{ghost}/tasks/{ghost}"),
            Some(json!({ "status": "done" })),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{pb}/tasks/{tb}"),
            format!("/v1/projects/{ghost}/tasks/{ghost}"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/projects/{pa}/tasks/{tb}"),
            format!("/v1/projects/{pa}/tasks/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/projects/{pa}/tasks/{tb}"),
            format!("/v1/projects/{pa}/tasks/{ghost}"),
            Some(json!({ "status": "done" })),
        ),
        (
            Method::DELETE,
            format!("/v1/projects/{pa}/tasks/{tb}"),
            format!("/v1/projects/{pa}/tasks/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/members/{bob}"),
            format!("/v1/members/{ghost}"),
            Some(json!({ "role": "owner" })),
        ),
        (
            Method::DELETE,
            format!("/v1/members/{bob}"),
            format!("/v1/members/{ghost}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/members/{}", b.owner_id),
            format!("/v1/members/{ghost}"),
            Some(json!({ "role": "viewer" })),
        ),
        (
            Method::DELETE,
            format!("/v1/members/{}", b.owner_id),
            format!("/v1/members/{ghost}"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/api-keys/{b_key_id}/revoke"),
            format!("/v1/api-keys/{ghost}/revoke"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/api-keys/{b_key_id}/rotate"),
            format!("/v1/api-keys/{ghost}/rotate"),
            None,
        ),
    ];
    for credential in [&a.token, &a_key] {
        for (method, path, ghost_path, body) in &attempts {
            let send = |p: &str| {
                let req = app.authed(method.clone(), p, credential);
                match body {
                    Some(b) => req.json(b),
                    None => req,
                }
            };
            let attack = expect_problem(send(path).send().await?, StatusCode::NOT_FOUND)
                .await
                .with_context(|| format!("{method} {path}"))?;
            let control =
                expect_problem(send(ghost_path).send().await?, StatusCode::NOT_FOUND).await?;
            ensure!(
                (attack.type_uri.as_str(), attack.detail.as_deref())
                    == (control.type_uri.as_str(), control.detail.as_deref()),
                "{method} {path} answers differently from an unknown id: {attack:?} vs {control:?}"
            );
            for id in [pb, db, tb, bob, b_key_id, b.id] {
                ensure!(
                    !format!("{attack:?}").contains(&id.to_string())
                        || path.contains(&id.to_string())
                );
            }
        }
        // Pointing a row of A at B's user answers like an unknown user.
        let as_b = app
            .authed(Method::POST, "/v1/projects", credential)
            .json(&json!({ "name": "x", "owner_id": b.owner_id }))
            .send()
            .await?;
        let attack = expect_problem(as_b, StatusCode::NOT_FOUND).await?;
        let unknown = app
            .authed(Method::POST, "/v1/projects", credential)
            .json(&json!({ "name": "x", "owner_id": ghost }))
            .send()
            .await?;
        let control = expect_problem(unknown, StatusCode::NOT_FOUND).await?;
        ensure!(attack.errors == control.errors && attack.detail == control.detail);
        let resp = app
            .authed(
                Method::POST,
                &format!("/v1/projects/{pa}/tasks"),
                credential,
            )
            .json(&json!({ "title": "x", "assignee_id": bob }))
            .send()
            .await?;
        expect_problem(resp, StatusCode::NOT_FOUND).await?;

        // Lists and summaries show nothing of B, even with a cursor made from B's row.
        let forged = Cursor {
            created_at: chrono::Utc::now() + chrono::Duration::days(1),
            id: pb,
        }
        .encode();
        for path in [
            "/v1/projects".to_owned(),
            format!("/v1/projects?cursor={forged}"),
            "/v1/projects?name_prefix=secret".to_owned(),
            "/v1/members".to_owned(),
            "/v1/api-keys".to_owned(),
            "/v1/audit-logs?limit=200".to_owned(),
            "/v1/usage/summary?period=month".to_owned(),
            "/v1/tenant".to_owned(),
        ] {
            let text = app.get_json(&path, credential).await?.to_string();
            for id in [pb, db, tb, bob, b_key_id, b.id, b.owner_id] {
                ensure!(
                    !text.contains(&id.to_string()),
                    "{path} shows B's {id}: {text}"
                );
            }
            ensure!(
                !text.contains("secret plans") && !text.contains("victim"),
                "{path}: {text}"
            );
        }
    }

    // Nothing of B changed, and B's credentials still work.
    let after = snapshot(&app, &b, &b_paths).await?;
    ensure!(before == after, "B's data changed:\n{before:?}\n{after:?}");
    app.get_json("/v1/projects", &b_key).await?;
    let docs = app
        .get_json(&format!("/v1/projects/{pb}/documents"), &b.token)
        .await?;
    ensure!(
        docs["items"].as_array().is_some_and(|d| d.len() == 1),
        "{docs}"
    );
    let tasks = app
        .get_json(&format!("/v1/projects/{pb}/tasks"), &b.token)
        .await?;
    ensure!(
        tasks["items"].as_array().is_some_and(|d| d.len() == 1),
        "{tasks}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_comes_from_the_credential_only() -> Result<()> {
    let app = spawn_app().await?;
    let a = app.tenant("cred-a").await?;
    let b = app.tenant("cred-b").await?;
    // A tenant id in a body is refused as an unknown field, not obeyed.
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/projects",
            json!({ "name": "x", "tenant_id": b.id }),
        ),
        (
            Method::PATCH,
            "/v1/tenant",
            json!({ "id": b.id, "name": "x" }),
        ),
        (
            Method::POST,
            "/v1/usage",
            json!({ "kind": "x", "tenant_id": b.id }),
        ),
        (
            Method::POST,
            "/v1/api-keys",
            json!({ "name": "x", "tenant_id": b.id }),
        ),
    ] {
        let resp = app
            .authed(method, path, &a.token)
            .json(&body)
            .send()
            .await?;
        expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    }
    // Headers do not pick the tenant either.
    let body = expect_json(
        app.authed(Method::GET, "/v1/tenant", &a.token)
            .header("x-tenant-id", b.id.to_string())
            .header("x-tenantry-tenant", b.id.to_string())
            .send()
            .await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(body["id"] == a.id.to_string());
    let b_projects = app.get_json("/v1/projects", &b.token).await?;
    ensure!(b_projects["items"].as_array().is_some_and(Vec::is_empty));
    Ok(())
}
