//! Adopting seed 003's database with `organizations` as the tenant root: every organization
//! becomes a tenant named after it, every other row gets its organization's tenant through its
//! foreign keys (the table with two paths follows the shorter one, both agreeing), rows are
//! unchanged apart from `tenant_id`, and the unchanged isolation matrix passes. Bad input
//! (unknown schema or table, NULL root names, orphans, disagreeing paths) is named, counted and
//! refused with nothing changed; `--orphans-to-default` and `--tenant-path` resolve it.

mod adopt_support;
mod common;

use adopt_support::{
    SEED003, SEED003_DATA, SEED003_TABLES, checksums, count, fixture, target, tenant_columns,
};
use common::{DEFAULT_TENANT, run_cli};
use sea_orm::ConnectionTrait;
use tenantry_tests::logins::LoginRole;

fn adopt(db: &tenantry_tests::TestDb, extra: &[&str]) -> anyhow::Result<common::CliRun> {
    let mut args = vec![
        "adopt",
        "--schema",
        "seed003",
        "--tenant-root",
        "organizations",
    ];
    args.extend_from_slice(extra);
    run_cli(&db.url(LoginRole::Owner), &args)
}

#[tokio::test]
async fn each_row_gets_its_organizations_tenant_and_the_matrix_passes() -> anyhow::Result<()> {
    let db = fixture(SEED003, SEED003_DATA).await?;
    let su = db.connect_superuser().await?;
    let before = checksums(&su, &SEED003_TABLES).await?;

    let plan = adopt(&db, &["--plan"])?;
    assert!(
        plan.success,
        "plan failed: {}\n{}",
        plan.stderr, plan.stdout
    );
    for expected in [
        "each row becomes its own tenant, named from name",
        "inherited from organizations through bolt_workflows_organization_id_fkey",
        "inherited from bolt_workflows through orchestrator_state_workflow_id_fkey",
        "projects_organization_id_name_key (organization_id, name) -> (tenant_id, organization_id, name)",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "plan lacks {expected:?}:\n{}",
            plan.stdout
        );
    }
    assert_eq!(
        tenant_columns(&su, "seed003").await?,
        0,
        "--plan changed something"
    );

    let path = std::env::temp_dir().join(format!("m0100_adopt_seed003_{}.rs", db.name));
    let written = adopt(
        &db,
        &["--write-migration", path.to_str().unwrap_or_default()],
    )?;
    assert!(written.success, "{}", written.stderr);
    let source = std::fs::read_to_string(&path)?;
    let _ = std::fs::remove_file(&path);
    assert!(
        source.contains(
            "Adoption::new(\"seed003\")\n        .tenant_root(\"organizations\", \"name\")"
        ),
        "{source}"
    );
    assert!(source.contains("AdoptionMigration::new("), "{source}");
    assert_eq!(
        tenant_columns(&su, "seed003").await?,
        0,
        "--write-migration changed something"
    );

    let run = adopt(&db, &[])?;
    assert!(run.success, "adopt failed: {}", run.stderr);
    assert_eq!(
        checksums(&su, &SEED003_TABLES).await?,
        before,
        "a row changed"
    );
    let tenants = common::strings(
        &su,
        "SELECT t.name FROM tenancy.tenants t JOIN seed003.organizations o ON o.tenant_id = t.id ORDER BY 1",
    )
    .await?;
    assert_eq!(tenants, ["Acme Corp", "Globex, Inc."]);
    assert_eq!(
        count(
            &su,
            "SELECT count(DISTINCT tenant_id) FROM seed003.organizations"
        )
        .await?,
        2
    );
    // Each row's tenant is its organization's, along every foreign key.
    for check in [
        "SELECT count(*) FROM seed003.projects p JOIN seed003.organizations o ON o.id = p.organization_id WHERE p.tenant_id <> o.tenant_id",
        "SELECT count(*) FROM seed003.knowledge_base k JOIN seed003.projects p ON p.id = k.project_id WHERE k.tenant_id <> p.tenant_id",
        "SELECT count(*) FROM seed003.bolt_workflows b JOIN seed003.projects p ON p.id = b.project_id WHERE b.tenant_id <> p.tenant_id",
        "SELECT count(*) FROM seed003.orchestrator_state s JOIN seed003.bolt_workflows b ON b.id = s.workflow_id WHERE s.tenant_id <> b.tenant_id",
        "SELECT count(*) FROM seed003.bmad_workflows w JOIN seed003.projects p ON p.id = w.project_id WHERE w.tenant_id <> p.tenant_id",
        "SELECT count(*) FROM seed003.projects WHERE tenant_id IS NULL",
    ] {
        assert_eq!(count(&su, check).await?, 0, "{check}");
    }
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let audit = migration::audit::audit_default(&owner).await?;
    assert!(audit.passed(), "catalog audit after adoption:\n{audit}");
    owner.close().await?;
    // Rows of two tenants: down is refused by the guard, nothing undone.
    let down = run_cli(&db.url(LoginRole::Owner), &["down"])?;
    assert!(!down.success, "down destroyed tenant assignments");
    assert!(
        down.stderr.contains("refusing to roll back"),
        "{}",
        down.stderr
    );
    assert_eq!(tenant_columns(&su, "seed003").await?, 6);

    let report = tenantry_tests::isolation::run(&target(&db)).await?;
    assert!(
        report.passed(),
        "isolation matrix on adopted seed 003:\n{report}"
    );
    su.close().await?;
    Ok(())
}

#[tokio::test]
async fn bad_input_is_named_counted_and_refused_with_nothing_changed() -> anyhow::Result<()> {
    let db = fixture(SEED003, SEED003_DATA).await?;
    let su = db.connect_superuser().await?;
    let url = db.url(LoginRole::Owner);

    let unknown = run_cli(&url, &["adopt", "--schema", "nosuch", "--plan"])?;
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("schema \"nosuch\" does not exist"),
        "{}",
        unknown.stderr
    );
    let unknown = run_cli(
        &url,
        &[
            "adopt",
            "--schema",
            "seed003",
            "--only",
            "projects,nosuch_table",
        ],
    )?;
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("nosuch_table"),
        "{}",
        unknown.stderr
    );
    let unknown = adopt(&db, &["--tenant-name", "title"])?;
    assert!(!unknown.success);
    assert!(
        unknown.stderr.contains("has no column title"),
        "{}",
        unknown.stderr
    );

    // A root without a name, an orphan child, a row whose two paths disagree.
    su.execute_unprepared(
        "INSERT INTO seed003.organizations (id, name) VALUES ('a0000000-0000-0000-0000-000000000003', NULL);
         INSERT INTO seed003.bmad_workflows (project_id, title) VALUES (NULL, 'Orphan');
         INSERT INTO seed003.bolt_workflows (id, project_id, organization_id) VALUES
           ('c0000000-0000-0000-0000-000000000003', 'b0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000002');",
    )
    .await?;
    let before = checksums(&su, &SEED003_TABLES).await?;
    let refused = adopt(&db, &[])?;
    assert!(!refused.success, "adopted bad data");
    for expected in [
        "seed003.organizations: 1 rows have a NULL name",
        "seed003.bmad_workflows: 1 rows have no path to a organizations row",
        "seed003.bolt_workflows: 1 rows where the path via organization_id and the path via project_id lead to different organizations rows",
        "--tenant-path bolt_workflows.project_id",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "lacks {expected:?}:\n{}",
            refused.stderr
        );
    }
    assert_eq!(
        tenant_columns(&su, "seed003").await?,
        0,
        "a refused plan changed something"
    );
    assert_eq!(checksums(&su, &SEED003_TABLES).await?, before);

    // The user's choices resolve it: the orphans go to the default tenant, the path is picked.
    let run = adopt(
        &db,
        &[
            "--orphans-to-default",
            "--tenant-path",
            "bolt_workflows.project_id",
        ],
    )?;
    assert!(run.success, "adopt failed: {}", run.stderr);
    assert_eq!(
        checksums(&su, &SEED003_TABLES).await?,
        before,
        "a row changed"
    );
    for (check, expected) in [
        (
            format!("SELECT count(*) FROM seed003.bmad_workflows WHERE title = 'Orphan' AND tenant_id = '{DEFAULT_TENANT}'"),
            1,
        ),
        (
            format!("SELECT count(*) FROM seed003.organizations WHERE name IS NULL AND tenant_id = '{DEFAULT_TENANT}'"),
            1,
        ),
        (
            "SELECT count(*) FROM seed003.bolt_workflows b JOIN seed003.projects p ON p.id = b.project_id WHERE b.tenant_id = p.tenant_id".into(),
            3,
        ),
    ] {
        assert_eq!(count(&su, &check).await?, expected, "{check}");
    }
    su.close().await?;
    Ok(())
}
