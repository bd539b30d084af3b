//! A dedicated tenant over HTTP: `POST /admin/tenants` with `"isolation": "dedicated"`, the
//! same routes answering the same way as for a shared tenant, a missing schema as a 503
//! problem (never a 500, never another tenant's data), and offboarding refused while members
//! remain unless `?force=true`.

mod api_support;

use anyhow::{Result, ensure};
use api_support::*;
use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_dedicated_tenant_works_through_the_same_routes() -> Result<()> {
    let app = spawn_app().await?;
    let shared = app.tenant("plain").await?;
    let resp = app
        .admin(Method::POST, "/admin/tenants")
        .json(&json!({
            "name": "Healthcare Co", "slug": "healthcare-co", "plan": "free",
            "owner_email": "diana@healthcare.test", "owner_full_name": "Diana",
            "owner_password": PASSWORD, "isolation": "dedicated",
        }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::CREATED).await?;
    ensure!(body["tenant"]["isolation"] == "dedicated", "{body}");
    let id: Uuid = serde_json::from_value(body["tenant"]["id"].clone())?;
    let token = app.login("diana@healthcare.test", PASSWORD, id).await?;

    let mut seen = Vec::new();
    for credential in [&shared.token, &token] {
        let project = app.project(credential, "Patient Portal").await?;
        app.document(credential, project, "Requirements").await?;
        app.task(credential, project, "Sign-in").await?;
        let list = app.get_json("/v1/projects", credential).await?;
        let docs = app
            .get_json(&format!("/v1/projects/{project}/documents"), credential)
            .await?;
        seen.push((
            list["items"].as_array().map(Vec::len),
            docs["items"].as_array().map(Vec::len),
            project,
        ));
    }
    ensure!(seen[0].0 == seen[1].0 && seen[0].1 == seen[1].1, "{seen:?}");
    // Across modes, another tenant's project is a 404 like any unknown id.
    let other = app
        .authed(Method::GET, &format!("/v1/projects/{}", seen[0].2), &token)
        .send()
        .await?;
    expect_problem(other, StatusCode::NOT_FOUND).await?;

    // Offboarding: refused while members remain, unless forced.
    let path = format!("/admin/tenants/{id}/offboard");
    let refused = app.admin(Method::POST, &path).send().await?;
    expect_problem(refused, StatusCode::CONFLICT).await?;

    // The schema dropped by hand: a clear 503 problem for its requests, never a 500.
    let su = app.superuser().await?;
    su.execute_unprepared(&format!(
        "DROP SCHEMA {} CASCADE",
        migration::dedicated::TenantSchema::for_tenant(id)
    ))
    .await?;
    let gone = app
        .authed(Method::GET, "/v1/projects", &token)
        .send()
        .await?;
    let problem = expect_problem(gone, StatusCode::SERVICE_UNAVAILABLE).await?;
    ensure!(problem.type_uri.ends_with("/unavailable"), "{problem:?}");
    let still = app
        .authed(Method::GET, "/v1/projects", &shared.token)
        .send()
        .await?;
    expect_json(still, StatusCode::OK).await?;

    let forced = app
        .admin(Method::POST, &format!("{path}?force=true"))
        .send()
        .await?;
    ensure!(forced.status() == StatusCode::OK, "{}", forced.status());
    Ok(())
}

#[tokio::test]
async fn a_tenant_is_promoted_and_demoted_over_http_and_keeps_working() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("enterprise").await?;
    let project = app.project(&t.token, "Patient Portal").await?;
    app.document(&t.token, project, "Requirements").await?;
    let before = app.get_json("/v1/projects", &t.token).await?;
    let path = format!("/admin/tenants/{}/isolation", t.id);

    for isolation in ["dedicated", "dedicated", "shared"] {
        let resp = app
            .admin(Method::POST, &path)
            .json(&json!({ "isolation": isolation }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::OK).await?;
        ensure!(body["isolation"] == isolation, "{body}");
        let after = app.get_json("/v1/projects", &t.token).await?;
        ensure!(after["items"] == before["items"], "{after} vs {before}");
    }
    // Bad input: an unknown mode is a 400 (nothing moved); an unknown tenant a 404.
    let bad = app
        .admin(Method::POST, &path)
        .json(&json!({ "isolation": "separate" }))
        .send()
        .await?;
    ensure!(bad.status().is_client_error(), "{}", bad.status());
    let unknown = app
        .admin(
            Method::POST,
            &format!("/admin/tenants/{}/isolation", Uuid::new_v4()),
        )
        .json(&json!({ "isolation": "dedicated" }))
        .send()
        .await?;
    expect_problem(unknown, StatusCode::NOT_FOUND).await?;
    Ok(())
}
