//! `plan::index_step`, the one builder of an index step, against a real PostgreSQL: it refuses a
//! name another relation holds (and drops nothing), rebuilds its own invalid leftover, and is
//! skipped once its index is valid on its own table.

use anyhow::{Context, ensure};
use migration::plan::{MigrationPlan, Step, index_step};
use sea_orm::sea_query::{Alias, Index};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::SchemaManager;

/// Whether `s.<name>` is a valid index on `s.<table>`.
async fn valid_on(db: &DatabaseConnection, table: &str, name: &str) -> anyhow::Result<bool> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT EXISTS (SELECT FROM pg_index i WHERE i.indexrelid = to_regclass('s.{name}') \
                 AND i.indrelid = 's.{table}'::regclass AND i.indisvalid)"
            ),
        ))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<bool>(0)?)
}

/// The oid of relation `s.<name>`.
async fn oid_of(db: &DatabaseConnection, name: &str) -> anyhow::Result<i64> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT 's.{name}'::regclass::oid::bigint"),
        ))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// A plan of one concurrent index step: `s.<name>` on `s.<table> (id)`.
fn plan_for(table: &str, name: &str) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.push(index_step(
        format!("index {name}"),
        "s",
        table,
        name,
        Index::create().col(Alias::new("id")).to_owned(),
        true,
    ));
    plan
}

#[tokio::test]
async fn an_index_step_refuses_a_taken_name_and_rebuilds_its_own_leftover() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(
        "CREATE SCHEMA s; CREATE TABLE s.a (id int); CREATE TABLE s.b (id int); \
         INSERT INTO s.a SELECT g % 3 FROM generate_series(1, 30) g; \
         CREATE INDEX a_id_idx ON s.b (id); CREATE TABLE s.a_taken_idx (x int)",
    )
    .await?;
    let manager = SchemaManager::new(&su);

    // The name is a user's index on another table: refused, with the relation named, and the
    // user's index is still there.
    let err = plan_for("a", "a_id_idx")
        .up(&manager, false)
        .await
        .err()
        .context("a taken name was built over")?;
    ensure!(
        err.to_string()
            .contains("s.a_id_idx exists and is not an index on s.a"),
        "{err}"
    );
    ensure!(
        valid_on(&su, "b", "a_id_idx").await?,
        "the user's index was dropped"
    );
    // Break: the same step without its first statement drops the user's index.
    let plan = plan_for("a", "a_id_idx");
    let Some(Step::Sql(step)) = plan.steps().first() else {
        anyhow::bail!("no SQL step");
    };
    let mut unguarded = step.clone();
    unguarded.up.remove(0);
    let mut broken = MigrationPlan::new();
    broken.push(unguarded);
    broken.up(&manager, false).await?;
    ensure!(
        !valid_on(&su, "b", "a_id_idx").await? && valid_on(&su, "a", "a_id_idx").await?,
        "without the guard the user's index is replaced"
    );

    // The name is a table's: refused as well, the table kept.
    let err = plan_for("a", "a_taken_idx")
        .up(&manager, false)
        .await
        .err()
        .context("a table's name was built over")?;
    ensure!(err.to_string().contains("s.a_taken_idx exists"), "{err}");
    su.execute_unprepared("SELECT count(*) FROM s.a_taken_idx")
        .await?;

    // Its own invalid leftover (a build that failed) is dropped and built again.
    let failed = su
        .execute_unprepared("CREATE UNIQUE INDEX CONCURRENTLY a_own_idx ON s.a (id)")
        .await;
    ensure!(failed.is_err(), "the duplicate build should fail");
    ensure!(!valid_on(&su, "a", "a_own_idx").await?);
    plan_for("a", "a_own_idx").up(&manager, false).await?;
    ensure!(
        valid_on(&su, "a", "a_own_idx").await?,
        "leftover not rebuilt"
    );
    // Once valid, the step is skipped: a second run changes nothing.
    let before = oid_of(&su, "a_own_idx").await?;
    plan_for("a", "a_own_idx").up(&manager, false).await?;
    ensure!(
        oid_of(&su, "a_own_idx").await? == before,
        "a valid index was rebuilt"
    );
    Ok(())
}

#[tokio::test]
async fn an_index_step_takes_a_quote_and_a_long_name_as_postgresql_does() -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    let su = db.connect_superuser().await?;
    // A user's table whose name ends a quoted identifier early, and an index name past 63 bytes.
    let table = "we\"ird";
    let name = format!("we\"ird_{}_legacy_key_idx", "x".repeat(50));
    let cut = migration::guards::truncate_ident(&name);
    ensure!(cut.len() == 63, "the name is not long enough to be cut");
    su.execute_unprepared(
        "CREATE SCHEMA s; CREATE TABLE s.\"we\"\"ird\" (id int); \
         INSERT INTO s.\"we\"\"ird\" SELECT generate_series(1, 30)",
    )
    .await?;
    let manager = SchemaManager::new(&su);
    let quoted = cut.replace('"', "\"\"");
    let exists = |sql_name: String| {
        format!(
            "SELECT EXISTS (SELECT FROM pg_index i WHERE i.indexrelid = \
             to_regclass('s.\"{sql_name}\"') AND i.indisvalid)"
        )
    };
    plan_for(table, &name).up(&manager, false).await?;
    let row = su
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            exists(quoted.replace('\'', "''")),
        ))
        .await?
        .context("no row")?;
    ensure!(
        row.try_get_by_index::<bool>(0)?,
        "no valid index under the cut name"
    );
    let oid = |db: &DatabaseConnection| {
        let q = format!("SELECT 's.\"{quoted}\"'::regclass::oid::bigint");
        let db = db.clone();
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    q,
                ))
                .await?
                .context("no row")?;
            anyhow::Ok(row.try_get_by_index::<i64>(0)?)
        }
    };
    // The probe finds the cut name: a second run is skipped, the index not rebuilt.
    let before = oid(&su).await?;
    plan_for(table, &name).up(&manager, false).await?;
    ensure!(oid(&su).await? == before, "a valid index was rebuilt");
    // Break: the name as sea-query writes it unescaped is not the identifier (here a syntax
    // error; with other text after the quote, other SQL).
    let raw = Index::create()
        .name(&cut)
        .table((Alias::new("s"), Alias::new(table)))
        .col(Alias::new("id"))
        .to_owned();
    ensure!(
        su.execute(&raw).await.is_err(),
        "an unescaped quote in an index name was taken"
    );
    Ok(())
}
