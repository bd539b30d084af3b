//! Every route's success and failure paths over real HTTP: the tenant, members, API keys,
//! projects (filters, cursor pagination), documents, tasks, usage, the audit trail and the
//! superadmin tenant routes (provisioning, suspension, offboarding).

mod api_support;

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use api_support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_read_by_all_changed_by_admins() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("acme").await?;
    let (_, viewer) = app.member(&t, "vera", "viewer").await?;
    let (_, member) = app.member(&t, "max", "member").await?;
    let body = app.get_json("/v1/tenant", &viewer).await?;
    ensure!(
        body["slug"] == "acme" && body["plan"] == "pro" && body["status"] == "active",
        "{body}"
    );
    let resp = app
        .authed(Method::PATCH, "/v1/tenant", &t.token)
        .json(&json!({ "name": "Acme Corporation", "settings": { "theme": "dark" } }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["name"] == "Acme Corporation" && body["settings"]["theme"] == "dark",
        "{body}"
    );
    for token in [&viewer, &member] {
        let resp = app
            .authed(Method::PATCH, "/v1/tenant", token)
            .json(&json!({ "name": "Mine" }))
            .send()
            .await?;
        expect_problem(resp, StatusCode::FORBIDDEN).await?;
    }
    let resp = app
        .authed(Method::PATCH, "/v1/tenant", &t.token)
        .json(&json!({ "settings": [1] }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let resp = app
        .authed(Method::PATCH, "/v1/tenant", &t.token)
        .json(&json!({ "name": "" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let resp = app
        .authed(Method::PATCH, "/v1/tenant", &t.token)
        .json(&json!({ "slug": "hijack" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_invited_changed_and_removed() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("team").await?;
    let (bob, bob_token) = app.member(&t, "bob", "member").await?;
    let body = app.get_json("/v1/members", &bob_token).await?;
    let emails: BTreeSet<_> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["email"].as_str())
        .collect();
    ensure!(
        emails.contains(t.owner_email.as_str()) && emails.contains("bob@people.test"),
        "{body}"
    );

    // Invites: twice is a conflict, an unknown address is not found, a member may not invite.
    let resp = app
        .authed(Method::POST, "/v1/members", &t.token)
        .json(&json!({ "email": "bob@people.test", "role": "viewer" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::CONFLICT).await?;
    let resp = app
        .authed(Method::POST, "/v1/members", &t.token)
        .json(&json!({ "email": "ghost@people.test", "role": "viewer" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    let resp = app
        .authed(Method::POST, "/v1/members", &t.token)
        .json(&json!({ "email": "bob@people.test", "role": "god" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let resp = app
        .authed(Method::POST, "/v1/members", &bob_token)
        .json(&json!({ "email": "x@y.z", "role": "viewer" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;

    // Roles: promote, the last owner stays, a member cannot change roles.
    let resp = app
        .authed(Method::PATCH, &format!("/v1/members/{bob}"), &t.token)
        .json(&json!({ "role": "admin" }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(body["role"] == "admin");
    let resp = app
        .authed(
            Method::PATCH,
            &format!("/v1/members/{}", t.owner_id),
            &t.token,
        )
        .json(&json!({ "role": "member" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::CONFLICT).await?;
    let resp = app
        .authed(
            Method::PATCH,
            &format!("/v1/members/{}", Uuid::new_v4()),
            &t.token,
        )
        .json(&json!({ "role": "member" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    // An admin may not make owners.
    let resp = app
        .authed(Method::PATCH, &format!("/v1/members/{bob}"), &bob_token)
        .json(&json!({ "role": "owner" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;

    // Removal.
    let resp = app
        .authed(
            Method::DELETE,
            &format!("/v1/members/{}", t.owner_id),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::CONFLICT).await?;
    let resp = app
        .authed(Method::DELETE, &format!("/v1/members/{bob}"), &t.token)
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::NO_CONTENT);
    let resp = app
        .authed(Method::DELETE, &format!("/v1/members/{bob}"), &t.token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_listed_without_secrets() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("keyring").await?;
    let (id, secret) = app
        .api_key(&t.token, json!({ "name": "deploy", "scopes": ["deploy"], "rate_limit_per_minute": 100, "monthly_quota": 1000 }))
        .await?;
    let list = app.get_json("/v1/api-keys", &t.token).await?;
    let text = list.to_string();
    ensure!(
        !text.contains(&secret) && !text.contains("secret"),
        "{text}"
    );
    let key = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["id"] == id.to_string())
        .context("key listed")?;
    ensure!(
        key["name"] == "deploy"
            && key["rate_limit_per_minute"] == 100
            && key["monthly_quota"] == 1000,
        "{key}"
    );
    ensure!(secret.contains(key["prefix"].as_str().unwrap_or("?")));
    for (body, field) in [
        (json!({ "name": "" }), "name"),
        (
            json!({ "name": "x", "rate_limit_per_minute": 0 }),
            "rate_limit_per_minute",
        ),
        (
            json!({ "name": "x", "rate_limit_per_minute": -1 }),
            "rate_limit_per_minute",
        ),
        (json!({ "name": "x", "scopes": "admin" }), "scopes"),
        (json!({ "name": "x", "expires_at": "soon" }), "expires_at"),
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
    let resp = app
        .authed(Method::POST, "/v1/api-keys", &t.token)
        .json(&json!({ "name": "x", "expires_at": "2001-01-01T00:00:00Z" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    for action in ["revoke", "rotate"] {
        let resp = app
            .authed(
                Method::POST,
                &format!("/v1/api-keys/{}/{action}", Uuid::new_v4()),
                &t.token,
            )
            .send()
            .await?;
        expect_problem(resp, StatusCode::NOT_FOUND).await?;
    }
    let (_, member) = app.member(&t, "mia", "member").await?;
    let resp = app
        .authed(Method::GET, "/v1/api-keys", &member)
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    let resp = app
        .authed(Method::POST, &format!("/v1/api-keys/{id}/revoke"), &member)
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projects_crud_filters_and_cursor_pagination() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("proj").await?;
    let (member_id, member) = app.member(&t, "pat", "member").await?;
    let (_, viewer) = app.member(&t, "val", "viewer").await?;
    let mut created = Vec::new();
    for (name, status) in [
        ("alpha", "active"),
        ("alpine", "paused"),
        ("beta", "active"),
        ("al%pha", "archived"),
        ("gamma", "completed"),
    ] {
        let resp = app
            .authed(Method::POST, "/v1/projects", &member)
            .json(&json!({ "name": name, "status": status, "description": "d", "metadata": { "k": 1 } }))
            .send()
            .await?;
        let body = expect_json(resp, StatusCode::CREATED).await?;
        ensure!(body["name"] == name && body["status"] == status && body["metadata"]["k"] == 1);
        created.push(body["id"].as_str().context("id")?.to_owned());
    }
    // Newest first, three pages of two.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/projects?limit=2&cursor={c}"),
            None => "/v1/projects?limit=2".to_owned(),
        };
        let page = app.get_json(&path, &viewer).await?;
        seen.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        ensure!(pages < 10, "pagination does not end");
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    ensure!(
        pages == 3 && seen == newest_first,
        "{pages} pages: {seen:?}"
    );
    // Filters.
    let page = app.get_json("/v1/projects?status=active", &viewer).await?;
    ensure!(ids(&page).len() == 2);
    let page = app
        .get_json("/v1/projects?name_prefix=alp", &viewer)
        .await?;
    ensure!(ids(&page).len() == 2, "{page}");
    let page = app
        .get_json("/v1/projects?name_prefix=al%25", &viewer)
        .await?;
    ensure!(ids(&page) == vec![created[3].clone()], "{page}");
    let page = app
        .get_json("/v1/projects?name_prefix=al&status=paused", &viewer)
        .await?;
    ensure!(ids(&page) == vec![created[1].clone()], "{page}");

    // One, change, delete.
    let id = &created[0];
    let body = app.get_json(&format!("/v1/projects/{id}"), &viewer).await?;
    ensure!(body["name"] == "alpha");
    let resp = app
        .authed(Method::PATCH, &format!("/v1/projects/{id}"), &member)
        .json(&json!({ "name": "alpha 2", "status": "completed", "owner_id": member_id }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["name"] == "alpha 2"
            && body["status"] == "completed"
            && body["owner_id"] == member_id.to_string(),
        "{body}"
    );
    let resp = app
        .authed(Method::PATCH, &format!("/v1/projects/{id}"), &member)
        .json(&json!({ "owner_id": null }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(body["owner_id"].is_null() && body["name"] == "alpha 2");
    let resp = app
        .authed(Method::PATCH, &format!("/v1/projects/{id}"), &member)
        .json(&json!({}))
        .send()
        .await?;
    expect_json(resp, StatusCode::OK).await?;
    let resp = app
        .authed(Method::PATCH, &format!("/v1/projects/{id}"), &member)
        .json(&json!({ "owner_id": Uuid::new_v4() }))
        .send()
        .await?;
    // An owner who is not a member names nothing of this tenant: 404, naming the field.
    let doc = expect_problem(resp, StatusCode::NOT_FOUND).await?;
    ensure!(
        doc.detail
            .as_deref()
            .is_some_and(|d| d.contains("owner_id"))
    );
    let resp = app
        .authed(Method::PATCH, &format!("/v1/projects/{id}"), &viewer)
        .json(&json!({ "name": "v" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    let resp = app
        .authed(Method::POST, "/v1/projects", &viewer)
        .json(&json!({ "name": "v" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    let resp = app
        .authed(Method::DELETE, &format!("/v1/projects/{id}"), &viewer)
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    let resp = app
        .authed(Method::DELETE, &format!("/v1/projects/{id}"), &member)
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::NO_CONTENT);
    for method in [Method::GET, Method::DELETE] {
        let resp = app
            .authed(method, &format!("/v1/projects/{id}"), &member)
            .send()
            .await?;
        expect_problem(resp, StatusCode::NOT_FOUND).await?;
    }
    let resp = app
        .authed(Method::PATCH, &format!("/v1/projects/{id}"), &member)
        .json(&json!({ "name": "z" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_and_tasks_live_inside_their_project() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("work").await?;
    let (bob, _) = app.member(&t, "bo", "member").await?;
    let p1 = app.project(&t.token, "one").await?;
    let p2 = app.project(&t.token, "two").await?;

    // Documents.
    let d1 = app.document(&t.token, p1, "spec").await?;
    app.document(&t.token, p1, "notes").await?;
    let page = app
        .get_json(&format!("/v1/projects/{p1}/documents?limit=1"), &t.token)
        .await?;
    ensure!(ids(&page).len() == 1 && page["next_cursor"].is_string());
    let body = app
        .get_json(&format!("/v1/projects/{p1}/documents/{d1}"), &t.token)
        .await?;
    ensure!(
        body["title"] == "spec"
            && body["tags"] == json!(["t"])
            && body["project_id"] == p1.to_string()
    );
    let resp = app
        .authed(
            Method::PATCH,
            &format!("/v1/projects/{p1}/documents/{d1}"),
            &t.token,
        )
        .json(&json!({ "body": "line 1\nline 2", "tags": ["a", "b"] }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["body"] == "line 1\nline 2"
            && body["tags"] == json!(["a", "b"])
            && body["title"] == "spec"
    );
    // The document is not in the other project, and unknown projects are not found.
    let resp = app
        .authed(
            Method::GET,
            &format!("/v1/projects/{p2}/documents/{d1}"),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    let resp = app
        .authed(
            Method::GET,
            &format!("/v1/projects/{}/documents", Uuid::new_v4()),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    let resp = app
        .authed(
            Method::POST,
            &format!("/v1/projects/{}/documents", Uuid::new_v4()),
            &t.token,
        )
        .json(&json!({ "title": "x" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    let resp = app
        .authed(
            Method::POST,
            &format!("/v1/projects/{p1}/documents"),
            &t.token,
        )
        .json(&json!({ "title": "x", "tags": [""] }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    let resp = app
        .authed(
            Method::DELETE,
            &format!("/v1/projects/{p1}/documents/{d1}"),
            &t.token,
        )
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::NO_CONTENT);
    let resp = app
        .authed(
            Method::DELETE,
            &format!("/v1/projects/{p1}/documents/{d1}"),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;

    // Tasks.
    let resp = app
        .authed(Method::POST, &format!("/v1/projects/{p1}/tasks"), &t.token)
        .json(&json!({ "title": "ship", "status": "in_progress", "assignee_id": bob, "due_at": "2030-01-02T03:04:05Z" }))
        .send()
        .await?;
    let task = expect_json(resp, StatusCode::CREATED).await?;
    let task_id = task["id"].as_str().context("id")?.to_owned();
    ensure!(
        task["assignee_id"] == bob.to_string() && task["due_at"] == "2030-01-02T03:04:05Z",
        "{task}"
    );
    app.task(&t.token, p1, "later").await?;
    let page = app
        .get_json(
            &format!("/v1/projects/{p1}/tasks?status=in_progress"),
            &t.token,
        )
        .await?;
    ensure!(ids(&page) == vec![task_id.clone()], "{page}");
    let page = app
        .get_json(&format!("/v1/projects/{p1}/tasks"), &t.token)
        .await?;
    ensure!(ids(&page).len() == 2);
    let resp = app
        .authed(
            Method::PATCH,
            &format!("/v1/projects/{p1}/tasks/{task_id}"),
            &t.token,
        )
        .json(&json!({ "status": "done", "assignee_id": null, "due_at": null }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["status"] == "done" && body["assignee_id"].is_null() && body["due_at"].is_null(),
        "{body}"
    );
    let resp = app
        .authed(
            Method::PATCH,
            &format!("/v1/projects/{p1}/tasks/{task_id}"),
            &t.token,
        )
        .json(&json!({ "assignee_id": Uuid::new_v4() }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    let resp = app
        .authed(
            Method::GET,
            &format!("/v1/projects/{p2}/tasks/{task_id}"),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    // Deleting the project deletes its tasks.
    let resp = app
        .authed(Method::DELETE, &format!("/v1/projects/{p1}"), &t.token)
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::NO_CONTENT);
    let resp = app
        .authed(
            Method::GET,
            &format!("/v1/projects/{p1}/tasks/{task_id}"),
            &t.token,
        )
        .send()
        .await?;
    expect_problem(resp, StatusCode::NOT_FOUND).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_recorded_and_summarised() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("meter").await?;
    let resp = app
        .authed(Method::POST, "/v1/usage", &t.token)
        .json(&json!({ "kind": "transcription", "quantity": 3, "audio_seconds": 12.5, "latency_ms": 40, "metadata": { "model": "small" } }))
        .send()
        .await?;
    expect_json(resp, StatusCode::CREATED).await?;
    let resp = app
        .authed(Method::POST, "/v1/usage", &t.token)
        .json(&json!({ "kind": "ocr", "ocr_pages": 4 }))
        .send()
        .await?;
    expect_json(resp, StatusCode::CREATED).await?;
    for period in ["day", "month"] {
        let body = app
            .get_json(&format!("/v1/usage/summary?period={period}"), &t.token)
            .await?;
        let rows = body["items"].as_array().context("items")?;
        let tr = rows
            .iter()
            .find(|r| r["kind"] == "transcription")
            .context("transcription row")?;
        ensure!(
            tr["quantity"] == 3 && tr["audio_seconds"] == 12.5 && tr["events"] == 1,
            "{tr}"
        );
        let ocr = rows
            .iter()
            .find(|r| r["kind"] == "ocr")
            .context("ocr row")?;
        ensure!(ocr["ocr_pages"] == 4 && ocr["quantity"] == 1, "{ocr}");
    }
    let body = app
        .get_json(
            "/v1/usage/summary?from=2000-01-01T00:00:00Z&to=2000-02-01T00:00:00Z",
            &t.token,
        )
        .await?;
    ensure!(body["items"].as_array().is_some_and(Vec::is_empty));
    let resp = app
        .authed(
            Method::GET,
            "/v1/usage/summary?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            &t.token,
        )
        .send()
        .await?;
    // An empty range has no usage (any range the document allows is answered).
    let body = expect_json(resp, StatusCode::OK).await?;
    ensure!(
        body["items"].as_array().is_some_and(Vec::is_empty),
        "{body}"
    );
    let resp = app
        .authed(Method::POST, "/v1/usage", &t.token)
        .json(&json!({ "kind": "x", "quantity": -1 }))
        .send()
        .await?;
    let doc = expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    ensure!(doc.errors.iter().any(|e| e.field == "quantity"), "{doc:?}");
    let resp = app
        .authed(Method::POST, "/v1/usage", &t.token)
        .json(&json!({ "kind": "" }))
        .send()
        .await?;
    expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_trail_is_for_admins() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("trail").await?;
    let (_, member) = app.member(&t, "mo", "member").await?;
    let project = app.project(&member, "audited").await?;
    let body = app.get_json("/v1/audit-logs?limit=200", &t.token).await?;
    let entry = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["action"] == "project.create" && e["resource_id"] == project.to_string())
        .context("project.create audited")?;
    ensure!(!entry["actor_user_id"].is_null(), "{entry}");
    let resp = app
        .authed(Method::GET, "/v1/audit-logs", &member)
        .send()
        .await?;
    expect_problem(resp, StatusCode::FORBIDDEN).await?;
    let resp = app
        .authed(Method::GET, "/v1/audit-logs?limit=0", &t.token)
        .send()
        .await?;
    expect_problem(resp, StatusCode::BAD_REQUEST).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superadmin_provisions_suspends_and_offboards() -> Result<()> {
    let app = spawn_app().await?;
    let t = app.tenant("leaving").await?;
    let stays = app.tenant("staying").await?;
    let project = app.project(&t.token, "to export").await?;
    app.document(&t.token, project, "doc").await?;
    let kept = app.project(&stays.token, "kept").await?;

    // Provisioning failures.
    let base = json!({ "name": "X", "slug": "leaving", "owner_email": "someone@x.test" });
    let resp = app
        .admin(Method::POST, "/admin/tenants")
        .json(&base)
        .send()
        .await?;
    expect_problem(resp, StatusCode::CONFLICT).await?;
    for (field, value) in [
        ("slug", json!("Not A Slug")),
        ("plan", json!("platinum")),
        ("owner_email", json!("nope")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        body["slug"] = if field == "slug" {
            body["slug"].clone()
        } else {
            json!("fresh-slug")
        };
        let resp = app
            .admin(Method::POST, "/admin/tenants")
            .json(&body)
            .send()
            .await?;
        expect_problem(resp, StatusCode::UNPROCESSABLE_ENTITY)
            .await
            .with_context(|| field)?;
    }
    // An existing user becomes the owner of another tenant.
    let resp = app
        .admin(Method::POST, "/admin/tenants")
        .json(&json!({ "name": "Second", "slug": "second", "owner_email": t.owner_email }))
        .send()
        .await?;
    let body = expect_json(resp, StatusCode::CREATED).await?;
    ensure!(body["owner_user_id"] == t.owner_id.to_string());
    let second: Uuid = serde_json::from_value(body["tenant"]["id"].clone())?;
    app.login(&t.owner_email, PASSWORD, second).await?;

    for action in ["suspend", "reactivate", "offboard"] {
        let resp = app
            .admin(
                Method::POST,
                &format!("/admin/tenants/{}/{action}", Uuid::new_v4()),
            )
            .send()
            .await?;
        expect_problem(resp, StatusCode::NOT_FOUND).await?;
    }

    // Offboarding: the export is the body, then the tenant is gone.
    let resp = app
        .admin(Method::POST, &format!("/admin/tenants/{}/offboard", t.id))
        .send()
        .await?;
    ensure!(resp.status() == StatusCode::OK, "{}", resp.status());
    ensure!(resp.headers()["content-type"] == "application/x-ndjson");
    let purged: u64 = resp.headers()["x-tenantry-purged-rows"].to_str()?.parse()?;
    let text = resp.text().await?;
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    ensure!(
        lines
            .first()
            .is_some_and(|l| l["table"] == "tenancy.tenants" && l["row"]["id"] == t.id.to_string())
    );
    ensure!(
        lines
            .iter()
            .any(|l| l["table"] == "public.projects" && l["row"]["id"] == project.to_string())
    );
    ensure!(lines.iter().any(|l| l["table"] == "public.documents"));
    ensure!(
        lines
            .iter()
            .all(|l| l["row"]["tenant_id"].is_null() || l["row"]["tenant_id"] == t.id.to_string()),
        "another tenant's row exported"
    );
    ensure!(
        purged as usize == lines.len(),
        "{purged} purged, {} exported",
        lines.len()
    );
    let list = expect_json(
        app.admin(Method::GET, "/admin/tenants").send().await?,
        StatusCode::OK,
    )
    .await?;
    ensure!(!list.to_string().contains(&t.id.to_string()));
    expect_problem(
        app.authed(Method::GET, "/v1/tenant", &t.token)
            .send()
            .await?,
        StatusCode::UNAUTHORIZED,
    )
    .await?;
    // The other tenants are untouched.
    app.get_json(&format!("/v1/projects/{kept}"), &stays.token)
        .await?;
    Ok(())
}
