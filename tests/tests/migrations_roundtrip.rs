//! Every migration's `down` undoes exactly its `up`: the schema after `up -n k` equals the schema
//! after `up` all then `down` back to k, for every k, and a full `down`/`reset` followed by `up`
//! rebuilds the identical schema (compared with `pg_dump --schema-only`, owners and grants kept).
//!
//! One test only: `down` of the security migration drops the cluster-global group roles when no
//! other database uses them, so two such tests must not run side by side in one cluster.

mod common;

use common::{all_migration_names, applied, assert_same_schema, run_as_owner, schema_dump};
use migration::run::Command;
use tenantry_tests::logins::LoginRole;

#[tokio::test]
async fn up_down_up_rebuilds_the_identical_schema_at_every_step() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    let names = all_migration_names();
    assert!(
        names.len() >= 6,
        "expected at least six migrations: {names:?}"
    );
    let all = u32::try_from(names.len())?;

    // State 0: nothing applied, only the bookkeeping table (`status` installs it).
    run_as_owner(&db, Command::Status).await?;
    let mut dumps = vec![schema_dump(&db)?];
    assert!(
        dumps[0].contains("CREATE TABLE public.seaql_migrations"),
        "status should have installed seaql_migrations"
    );

    // Up one migration at a time, remembering the schema after each.
    for k in 1..=names.len() {
        run_as_owner(&db, Command::Up(Some(1))).await?;
        let owner = db.connect(LoginRole::Owner, 1).await?;
        assert_eq!(applied(&owner).await?, names[..k].to_vec());
        owner.close().await?;
        let dump = schema_dump(&db)?;
        // The backfill only writes data; every other migration must change the schema.
        let data_only = names[k - 1] == "m0004_backfill";
        assert_eq!(
            dump == dumps[k - 1],
            data_only,
            "{}: schema changed = {}",
            names[k - 1],
            dump != dumps[k - 1]
        );
        dumps.push(dump);
    }
    let full = dumps[names.len()].clone();
    for needle in [
        "CREATE SCHEMA tenancy",
        "ENABLE ROW LEVEL SECURITY",
        "FORCE ROW LEVEL SECURITY",
        "CREATE POLICY projects_app_select",
    ] {
        assert!(full.contains(needle), "full schema lacks {needle:?}");
    }

    // Down one at a time: each state must equal the one `up` produced.
    for k in (0..names.len()).rev() {
        run_as_owner(&db, Command::Down(Some(1))).await?;
        let owner = db.connect(LoginRole::Owner, 1).await?;
        assert_eq!(applied(&owner).await?, names[..k].to_vec());
        owner.close().await?;
        let (now, then) = (schema_dump(&db)?, dumps[k].clone());
        assert_same_schema(
            &now,
            &then,
            &format!("after rolling {} back vs. after up -n {k}", names[k]),
        );
    }

    // Up all at once, then down all at once (`down -n <all>`), then up again.
    run_as_owner(&db, Command::Up(None)).await?;
    assert_same_schema(&schema_dump(&db)?, &full, "up (all) after a step-wise down");
    run_as_owner(&db, Command::Down(Some(all))).await?;
    assert_same_schema(&schema_dump(&db)?, &dumps[0], "down -n <all>");
    run_as_owner(&db, Command::Up(None)).await?;
    assert_same_schema(&schema_dump(&db)?, &full, "up after down -n <all>");

    // `refresh` (down all, up all) is a no-op on the schema.
    run_as_owner(&db, Command::Refresh).await?;
    assert_same_schema(&schema_dump(&db)?, &full, "refresh");

    // `reset` also drops the bookkeeping table; `up` then rebuilds everything.
    run_as_owner(&db, Command::Reset).await?;
    let reset = schema_dump(&db)?;
    assert!(
        !reset.contains("CREATE TABLE"),
        "reset left tables behind:\n{reset}"
    );
    run_as_owner(&db, Command::Up(None)).await?;
    assert_same_schema(&schema_dump(&db)?, &full, "up after reset");
    let owner = db.connect(LoginRole::Owner, 1).await?;
    assert_eq!(applied(&owner).await?, names);
    owner.close().await?;
    Ok(())
}
