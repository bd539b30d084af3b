//! A user's own database (owned by their own login) with none of Tenantry's objects (seed
//! 001's tables in `public`, including its own `public.users` with an integer key): `adopt
//! --plan` changes nothing;
//! `adopt` installs the tenancy core alone (schema `tenancy`, identity table
//! `tenancy.users`; never our demo tables) and adopts the user's tables, every row identical
//! apart from `tenant_id`; `verify` passes; `status` lists the core set and the adoption; a
//! later `up` creates none of our demo tables; the unchanged attack matrix passes on a clone
//! (`test-isolation --from-database`); `down` undoes the adoption.

mod adopt_support;
mod common;

use adopt_support::{SEED001, SEED001_DATA, SEED001_TABLES, checksums, count, tenant_columns};
use common::{DEFAULT_TENANT, run_cli};
use sea_orm::ConnectionTrait;
use tenantry_tests::isolation::clone::clone_database;
use tenantry_tests::isolation::{self, IsolationTarget};

/// Seed 001 as its application created it in `public` (no schema of its own).
fn in_public(sql: &str) -> String {
    sql.replace("CREATE SCHEMA seed001;", "")
        .replace("seed001.", "public.")
}

/// The login that owns the user's database and tables.
const USER_OWNER: &str = "shop_owner";

async fn exists<C: ConnectionTrait>(su: &C, relation: &str) -> anyhow::Result<bool> {
    Ok(count(
        su,
        &format!("SELECT count(*) FROM (SELECT to_regclass('{relation}') r) x WHERE r IS NOT NULL"),
    )
    .await?
        == 1)
}

#[tokio::test]
async fn a_bare_database_gets_the_core_alone_then_its_own_tables_adopted() -> anyhow::Result<()> {
    // The user's database, owned by the user's own login (not one of ours).
    let db = tenantry_tests::empty_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER_OWNER}') THEN \
         CREATE ROLE {USER_OWNER} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS; END IF; END $$; \
         ALTER DATABASE {} OWNER TO {USER_OWNER}",
        db.name
    ))
    .await?;
    let url = tenantry_tests::shared_cluster()?.url(USER_OWNER, &db.name);
    let owner = tenantry_tests::databases::connect(&url, 1).await?;
    owner.execute_unprepared(&in_public(SEED001)).await?;
    owner.execute_unprepared(&in_public(SEED001_DATA)).await?;
    owner.close().await?;
    let tables: Vec<(String, &str)> = SEED001_TABLES
        .iter()
        .map(|(t, k)| (t.replace("seed001.", "public."), *k))
        .collect();
    let tables: Vec<(&str, &str)> = tables.iter().map(|(t, k)| (t.as_str(), *k)).collect();
    let before = checksums(&su, &tables).await?;
    let adopt = |extra: &[&str]| {
        let mut args = vec!["adopt", "--schema", "public", "--global", "countries"];
        args.extend_from_slice(extra);
        run_cli(&url, &args)
    };

    // --plan: the core's SQL, then the adoption's; nothing changed.
    let plan = adopt(&["--plan"])?;
    assert!(
        plan.success,
        "plan failed: {}\n{}",
        plan.stderr, plan.stdout
    );
    for expected in [
        "installs it first",
        "===== m0002_tenancy (up) =====",
        "CREATE TABLE \"tenancy\".\"users\"",
        "-- table public.uploads (3 rows)",
    ] {
        assert!(
            plan.stdout.contains(expected),
            "plan lacks {expected:?}:\n{}",
            plan.stdout
        );
    }
    // Phase 1 adds the tenant reference after the backfill: NOT VALID, then VALIDATE.
    let at = |needle: &str| plan.stdout.find(needle);
    let backfill = at("-- backfill public.uploads.tenant_id");
    let fk = at(
        "ALTER TABLE \"public\".\"uploads\" ADD CONSTRAINT \"uploads_tenant_id_fkey\" FOREIGN KEY (\"tenant_id\") REFERENCES \"tenancy\".\"tenants\" (\"id\") ON DELETE CASCADE NOT VALID",
    );
    let validate =
        at("ALTER TABLE \"public\".\"uploads\" VALIDATE CONSTRAINT \"uploads_tenant_id_fkey\"");
    assert!(
        backfill.is_some() && backfill < fk && fk < validate,
        "tenant reference not after the backfill ({backfill:?}, {fk:?}, {validate:?}):\n{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("m0001_legacy_baseline"),
        "{}",
        plan.stdout
    );
    assert!(
        !plan.stdout.contains("public.seaql_migrations"),
        "{}",
        plan.stdout
    );
    assert!(
        !exists(&su, "tenancy.tenants").await?,
        "--plan installed the core"
    );
    assert!(
        !exists(&su, "public.seaql_migrations").await?,
        "--plan recorded something"
    );
    assert_eq!(
        tenant_columns(&su, "public").await?,
        0,
        "--plan changed a table"
    );

    // adopt: the core alone, then the user's tables.
    let done = adopt(&[])?;
    assert!(
        done.success,
        "adopt failed: {}\n{}",
        done.stderr, done.stdout
    );
    assert!(
        done.stdout.contains("installed the tenancy core"),
        "{}",
        done.stdout
    );
    assert_eq!(
        checksums(&su, &tables).await?,
        before,
        "adopt changed a row"
    );
    for demo in ["public.projects", "public.documents", "public.tasks"] {
        assert!(
            !exists(&su, demo).await?,
            "{demo} was created in the user's database"
        );
    }
    assert!(exists(&su, "tenancy.users").await?);
    assert_eq!(
        count(
            &su,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name = 'users' AND column_name = 'id' AND data_type = 'integer'"
        )
        .await?,
        1,
        "the user's own users table lost its integer key"
    );
    assert_eq!(
        count(
            &su,
            &format!("SELECT count(*) FROM public.users WHERE tenant_id IS DISTINCT FROM '{DEFAULT_TENANT}'")
        )
        .await?,
        0
    );
    let owner = tenantry_tests::databases::connect(&url, 1).await?;
    tenantry_tests::logins::grant_logins(&owner).await?;
    owner.close().await?;

    let verify = run_cli(&url, &["verify"])?;
    assert!(
        verify.success,
        "verify failed: {}\n{}",
        verify.stderr, verify.stdout
    );
    let status = run_cli(&url, &["status"])?;
    assert!(status.success, "status failed: {}", status.stderr);
    for expected in [
        "m0002_tenancy",
        "m0010_dedicated_tenants",
        "Tenancy core only",
        "Adoption adopt_public (applied)",
    ] {
        assert!(
            status.stdout.contains(expected) || status.stderr.contains(expected),
            "status lacks {expected:?}:\n{}\n{}",
            status.stdout,
            status.stderr
        );
    }
    // `up` afterwards runs the core set: nothing to do, no demo table.
    let up = run_cli(&url, &["up"])?;
    assert!(up.success, "up failed: {}", up.stderr);
    assert!(
        !exists(&su, "public.projects").await?,
        "up created our demo tables"
    );

    // test-isolation --from-database: the unchanged matrix on a clone.
    let clone = clone_database(&db.superuser_url()).await?;
    let report = isolation::run(&IsolationTarget::for_db(&clone.db, 20)).await?;
    assert!(report.passed(), "{report}");
    let attacked: Vec<String> = report.matrix.iter().map(|r| r.subject.clone()).collect();
    for table in [
        "public.users",
        "public.uploads",
        "public.sellout_entries2_rest",
    ] {
        assert!(
            attacked.contains(&table.to_owned()),
            "{table} not attacked: {attacked:?}"
        );
    }

    // down undoes the adoption; the rows stay as they were.
    let down = run_cli(&url, &["down"])?;
    assert!(down.success, "down failed: {}", down.stderr);
    assert!(
        down.stdout.contains("Rolled back adoption adopt_public"),
        "{}",
        down.stdout
    );
    assert_eq!(
        tenant_columns(&su, "public").await?,
        0,
        "down left a tenant_id column"
    );
    assert_eq!(checksums(&su, &tables).await?, before, "down changed a row");
    su.close().await?;
    Ok(())
}
