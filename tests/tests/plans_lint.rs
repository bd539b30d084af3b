//! squawk (the PostgreSQL migration linter, `pip install squawk-cli`) passes every plan we
//! print: each warning that remains is annotated in the printed SQL with squawk's ignore
//! comment and the reason. Without the annotations the same plans fail (so the check bites),
//! and an ignore comment without a reason is itself a failure.
//!
//! Our migrations' plans need no database (they are rendered exactly as `migration plan`
//! prints them); the adoption plans of the seed 001 and seed 003 fixtures are built from their
//! live catalogs, exactly as `migration adopt --plan` prints them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use migration::adoption::{self, Adoption, Phase};
use tenantry_tests::logins::LoginRole;

mod adopt_support;
mod common;

/// Every plan squawk must pass, as (file name, printed SQL). One line per plan.
fn plans() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in migration::planned() {
        out.push((format!("{}.up.sql", m.name()), m.render(false).join("\n")));
        out.push((format!("{}.down.sql", m.name()), m.render(true).join("\n")));
    }
    out
}

/// The adoption plans of the test fixtures (`adopt --plan`), one line per fixture.
async fn adoption_plans() -> anyhow::Result<Vec<(String, String)>> {
    use adopt_support::{SEED001, SEED001_DATA, SEED003, SEED003_DATA, fixture};
    let mut out = Vec::new();
    for (name, schema, data, declaration) in [
        (
            "adopt_seed001.sql",
            SEED001,
            SEED001_DATA,
            Adoption::new("seed001").global(&["countries"]),
        ),
        (
            "adopt_seed003.sql",
            SEED003,
            SEED003_DATA,
            Adoption::new("seed003").tenant_root("organizations", "name"),
        ),
    ] {
        let db = fixture(schema, data).await?;
        let conn = migration::run::connect(&db.url(LoginRole::Owner)).await?;
        let plan = adoption::plan(&conn, &declaration).await?;
        conn.close().await?;
        out.push((name.to_owned(), plan.render(Phase::All).join("\n")));
    }
    Ok(out)
}

#[tokio::test]
async fn squawk_passes_the_adoption_plans_of_the_fixtures() -> anyhow::Result<()> {
    let squawk = squawk()?;
    let dir = std::env::temp_dir().join(format!("tenantry-squawk-adopt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut files = Vec::new();
    for (name, sql) in adoption_plans().await? {
        let path = dir.join(name);
        std::fs::write(&path, format!("{sql}\n"))?;
        files.push(path);
    }
    let findings = lint(&squawk, &files)?;
    assert!(
        findings.is_empty(),
        "squawk warnings without an explanation in adoption plans:\n{}",
        findings.join("\n")
    );
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// The installed squawk, or a failure that says how to install it.
fn squawk() -> anyhow::Result<PathBuf> {
    let bin = std::env::var_os("SQUAWK").map_or_else(|| PathBuf::from("squawk"), PathBuf::from);
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(bin),
        _ => bail!(
            "squawk, the migration linter this test runs, is not installed: install it with \
             `pip install squawk-cli` (`.ci/run` does), or point SQUAWK at the binary"
        ),
    }
}

/// One squawk finding: `file:line rule: message`.
fn lint(squawk: &Path, files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let out = Command::new(squawk)
        .args(["--pg-version", "15", "--reporter", "json"])
        .args(files)
        .output()
        .context("running squawk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let findings: serde_json::Value = serde_json::from_str(stdout.trim()).with_context(|| {
        format!(
            "squawk printed no JSON (exit {:?}): {stdout}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let list = findings.as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|f| {
            format!(
                "{}:{} {}: {}",
                f["file"].as_str().unwrap_or("?"),
                f["line"].as_u64().map_or(0, |l| l + 1),
                f["rule_name"].as_str().unwrap_or("?"),
                f["message"].as_str().unwrap_or("?")
            )
        })
        .collect())
}

fn write_plans(dir: &Path, strip_ignores: bool) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    for (name, sql) in plans() {
        let sql: String = sql
            .lines()
            .filter(|l| !(strip_ignores && l.contains("squawk-ignore")))
            .map(|l| format!("{l}\n"))
            .collect();
        let path = dir.join(name);
        std::fs::write(&path, sql)?;
        files.push(path);
    }
    Ok(files)
}

#[test]
fn squawk_passes_every_plan_and_every_ignore_says_why() -> anyhow::Result<()> {
    let squawk = squawk()?;
    let dir = std::env::temp_dir().join(format!("tenantry-squawk-{}", std::process::id()));

    let files = write_plans(&dir.join("annotated"), false)?;
    let findings = lint(&squawk, &files)?;
    assert!(
        findings.is_empty(),
        "squawk warnings without an explanation (fix the statement, or add \
         `plan.lint_ignore(&[rule], reason)` after the step):\n{}",
        findings.join("\n")
    );

    // Every ignore names its rules and gives a reason after a second `--`.
    for (name, sql) in plans() {
        for line in sql.lines().filter(|l| l.contains("squawk-ignore")) {
            let reason = line
                .split_once("squawk-ignore")
                .and_then(|(_, rest)| rest.split_once(" -- "))
                .map(|(_, reason)| reason.trim());
            assert!(
                reason.is_some_and(|r| r.len() >= 20),
                "{name}: ignore without a reason: {line}"
            );
        }
    }

    // The check bites: without the annotations, the same plans fail.
    let bare = write_plans(&dir.join("bare"), true)?;
    let unexplained = lint(&squawk, &bare)?;
    assert!(
        unexplained
            .iter()
            .any(|f| f.contains("ban-drop-constraint"))
            && unexplained
                .iter()
                .any(|f| f.contains("require-statement-timeout")),
        "squawk found nothing in the plans without their annotations: {unexplained:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
