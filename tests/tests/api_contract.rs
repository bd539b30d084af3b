//! The OpenAPI document is the contract: schemathesis (PyPI `schemathesis`) generates requests
//! from the real server's `/openapi.json`, valid and invalid, sends them with an admin-scoped API
//! key whose rate limits do not get in the way, and runs every check: no 5xx, no schema-valid
//! request rejected, no invalid one accepted, no response outside the document, no
//! authentication ignored. `/admin` is left out: it needs the superadmin token, and its
//! operations (suspend, offboard) would end the run's own tenant.
//!
//! The run is bounded (`SCHEMATHESIS_MAX_EXAMPLES` per operation, default 15; a fixed seed, so a
//! failure reproduces). Without schemathesis the test fails and says how to install it.

mod api_support;

use std::process::Stdio;

use anyhow::{Context, Result, bail};
use api_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() -> Result<()> {
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into());
    if std::process::Command::new(&program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        bail!(
            "schemathesis is not installed: `pip install schemathesis` (or set SCHEMATHESIS to its path)"
        );
    }
    let app = spawn_app_with(|c, _| {
        c.default_rate_limit_per_minute = 1_000_000;
        c.plan_rate_limits.pro = 1_000_000;
    })
    .await?;
    let tenant = app.tenant("contract").await?;
    app.project(&tenant.token, "Contract project").await?;
    let (_, key) = app
        .api_key(
            &tenant.token,
            json!({ "name": "schemathesis", "scopes": ["admin"] }),
        )
        .await?;
    let examples = std::env::var("SCHEMATHESIS_MAX_EXAMPLES").unwrap_or_else(|_| "15".into());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    let output = tokio::process::Command::new(&program)
        .args(["--config-file", config])
        .args(["run", &format!("{}/openapi.json", app.base)])
        .args(["--checks", "all"])
        .args(["--exclude-path-regex", "^/admin"])
        .args(["--max-examples", &examples])
        .args(["--seed", "1"])
        .args(["--workers", "2"])
        .args(["--no-color", "--suppress-health-check", "all"])
        .args(["--generation-database", "none"])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .context("running schemathesis")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "schemathesis found problems ({}):\n{stdout}\n{stderr}",
            output.status
        );
    }
    println!("{stdout}");
    Ok(())
}
