//! The `migration` command line: `plan` prints the SQL and changes nothing, `verify` passes on a
//! migrated database and fails (naming the broken invariant) once a policy is dropped, and
//! `status` works. The binary is built on demand with the cargo running these tests.

mod common;

use common::{run_as_owner, run_cli, scalar_i64, schema_dump};
use migration::run::Command;
use sea_orm::ConnectionTrait;
use tenantry_tests::logins::LoginRole;

/// Every migration's rendered `up` is non-empty, and together they contain the statements that
/// make tenancy safe: NOT VALID constraints and their validation (m0005), forced row level
/// security and policies (m0006).
#[test]
fn every_plan_renders_its_sql() {
    let mut all = String::new();
    for m in migration::planned() {
        let up = m.plan().render_up();
        assert!(!up.is_empty(), "{}: empty plan", m.name());
        assert!(
            up.iter().any(|l| !l.starts_with("--")),
            "{}: plan renders only comments",
            m.name()
        );
        let text = up.join("\n");
        let expect: &[&str] = match m.name() {
            "m0003_tenant_columns" => &["ADD COLUMN", "SET DEFAULT"],
            "m0004_backfill" => &["-- backfill public.projects.tenant_id", "UPDATE"],
            "m0005_enforce_tenancy" => &[
                "NOT VALID",
                "VALIDATE CONSTRAINT",
                "SET NOT NULL",
                "CONCURRENTLY",
            ],
            "m0006_security" => &[
                "CREATE POLICY",
                "FORCE ROW LEVEL SECURITY",
                "ENABLE ROW LEVEL SECURITY",
            ],
            _ => &[],
        };
        for needle in expect {
            assert!(
                text.contains(needle),
                "{}: plan lacks {needle:?}:\n{text}",
                m.name()
            );
        }
        all.push_str(&text);
    }
    for needle in [
        "CREATE POLICY",
        "FORCE ROW LEVEL SECURITY",
        "NOT VALID",
        "VALIDATE CONSTRAINT",
    ] {
        assert!(all.contains(needle), "no plan contains {needle:?}");
    }
}

/// What `plan` must not change: the schema and the migrations table.
fn snapshot(db: &tenantry_tests::TestDb) -> anyhow::Result<String> {
    schema_dump(db)
}

#[tokio::test]
async fn plan_prints_pending_sql_and_changes_nothing() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    run_as_owner(&db, Command::Up(Some(1))).await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    owner
        .execute_unprepared("INSERT INTO public.projects (name) VALUES ('legacy')")
        .await?;
    run_as_owner(&db, Command::Up(Some(2))).await?;
    let schema_before = snapshot(&db)?;
    let count_sql = "SELECT count(*) FROM public.seaql_migrations";
    assert_eq!(scalar_i64(&owner, count_sql).await?, 3);
    let nulls_sql = "SELECT count(*) FROM public.projects WHERE tenant_id IS NULL";
    assert_eq!(scalar_i64(&owner, nulls_sql).await?, 1);

    let url = db.url(LoginRole::Owner);
    let up = run_cli(&url, &["plan"])?;
    assert!(up.success, "plan failed: {up:?}");
    for needle in [
        "===== m0004_backfill (up)",
        "===== m0005_enforce_tenancy (up)",
        "===== m0006_security (up)",
        "CREATE POLICY",
        "FORCE ROW LEVEL SECURITY",
        "VALIDATE CONSTRAINT",
    ] {
        assert!(
            up.stdout.contains(needle),
            "plan lacks {needle:?}:\n{}",
            up.stdout
        );
    }
    for applied in [
        "m0001_legacy_baseline",
        "m0002_tenancy",
        "m0003_tenant_columns",
    ] {
        assert!(
            !up.stdout.contains(&format!("===== {applied}")),
            "plan shows the applied {applied}"
        );
    }
    let one = run_cli(&url, &["plan", "-n", "1"])?;
    assert!(one.success, "plan -n 1 failed: {one:?}");
    assert!(one.stdout.contains("===== m0004_backfill (up)"));
    assert!(
        !one.stdout.contains("===== m0005"),
        "plan -n 1 shows two migrations"
    );
    let down = run_cli(&url, &["plan", "--down"])?;
    assert!(down.success, "plan --down failed: {down:?}");
    assert!(
        down.stdout.contains("===== m0003_tenant_columns (down)"),
        "{}",
        down.stdout
    );
    assert!(down.stdout.contains("DROP COLUMN"), "{}", down.stdout);

    assert_eq!(
        scalar_i64(&owner, count_sql).await?,
        3,
        "plan recorded a migration"
    );
    assert_eq!(
        scalar_i64(&owner, nulls_sql).await?,
        1,
        "plan backfilled data"
    );
    owner.close().await?;
    common::assert_same_schema(&snapshot(&db)?, &schema_before, "after plan");
    Ok(())
}

#[tokio::test]
async fn plan_on_an_empty_database_does_not_create_the_migrations_table() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    let before = snapshot(&db)?;
    let out = run_cli(&db.url(LoginRole::Owner), &["plan"])?;
    assert!(out.success, "plan failed: {out:?}");
    assert!(out.stdout.contains("===== m0001_legacy_baseline (up)"));
    assert!(out.stdout.contains("===== m0006_security (up)"));
    common::assert_same_schema(&snapshot(&db)?, &before, "plan on an empty database");
    Ok(())
}

#[tokio::test]
async fn verify_passes_when_migrated_and_names_a_dropped_policy() -> anyhow::Result<()> {
    let db = common::migrated_db().await?;
    let url = db.url(LoginRole::Owner);
    let ok = run_cli(&url, &["verify"])?;
    assert!(ok.success, "verify failed on a migrated database: {ok:?}");
    assert!(ok.stdout.contains(" 0 failed"), "{}", ok.stdout);
    assert!(!ok.stdout.contains("FAIL "), "{}", ok.stdout);

    let su = db.connect_superuser().await?;
    su.execute_unprepared("DROP POLICY projects_app_select ON public.projects")
        .await?;
    su.close().await?;
    let bad = run_cli(&url, &["verify"])?;
    assert!(
        !bad.success,
        "verify passed without projects_app_select: {bad:?}"
    );
    let failing: Vec<&str> = bad
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert_eq!(
        failing.len(),
        1,
        "exactly one finding should fail: {failing:#?}"
    );
    assert!(
        failing[0].contains("policies_per_command")
            && failing[0].contains("public.projects SELECT"),
        "unexpected failure: {}",
        failing[0]
    );
    assert!(bad.stdout.contains(" 1 failed"), "{}", bad.stdout);
    assert!(
        bad.stderr.contains("1 invariant(s) failed"),
        "{}",
        bad.stderr
    );
    Ok(())
}

#[tokio::test]
async fn status_lists_every_migration() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    run_as_owner(&db, Command::Up(Some(2))).await?;
    let out = run_cli(&db.url(LoginRole::Owner), &["status"])?;
    assert!(out.success, "status failed: {out:?}");
    for (i, m) in migration::planned().iter().enumerate() {
        let state = if i < 2 { "Applied" } else { "Pending" };
        let line = format!("Migration '{}'... {state}", m.name());
        assert!(
            out.stdout.contains(&line),
            "status does not print {line:?}:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}
