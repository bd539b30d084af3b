//! The upgrade path of m0011: a database of ours at m0010, with users and memberships, runs
//! m0011 and keeps every user (same rows, now in `tenancy.users`) and membership; sign-in
//! lookups find them; `down` of m0011 moves the table back and the lookups still find them.

mod common;

use common::{DEFAULT_TENANT, run_as_owner, scalar_i64};
use migration::run::Command;
use sea_orm::ConnectionTrait;
use tenantry_tests::logins::{LoginRole, grant_logins};

const USERS_AND_MEMBERS: &str = "
INSERT INTO public.users (id, email, full_name, password_hash) VALUES
  ('10000000-0000-0000-0000-000000000001', 'Ada@Example.com', 'Ada', 'hash-a'),
  ('10000000-0000-0000-0000-000000000002', 'zoë@example.com', 'Zoë', NULL);
INSERT INTO tenancy.tenant_users (tenant_id, user_id, role) VALUES
  ('00000000-0000-0000-0000-000000000000', '10000000-0000-0000-0000-000000000001', 'owner'),
  ('00000000-0000-0000-0000-000000000000', '10000000-0000-0000-0000-000000000002', 'member');
";

async fn checksum<C: ConnectionTrait>(su: &C, table: &str) -> anyhow::Result<(i64, String)> {
    let row = su
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT count(*), md5(coalesce(string_agg(to_jsonb(t)::text, E'\\n' ORDER BY to_jsonb(t)::text), '')) FROM {table} t"
            ),
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no checksum of {table}"))?;
    Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?))
}

/// What the app's sign-in lookup finds for Ada (case-insensitive e-mail).
async fn login_found(db: &tenantry_tests::TestDb) -> anyhow::Result<i64> {
    let app = db.connect(LoginRole::App, 1).await?;
    let n = scalar_i64(
        &app,
        "SELECT count(*) FROM tenancy.find_login('ada@example.com') WHERE password_hash = 'hash-a'",
    )
    .await?;
    app.close().await?;
    Ok(n)
}

#[tokio::test]
async fn m0011_moves_the_identity_table_and_keeps_every_user_and_membership() -> anyhow::Result<()>
{
    let db = tenantry_tests::empty_db().await?;
    run_as_owner(&db, Command::Up(Some(10))).await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    grant_logins(&owner).await?;
    owner.close().await?;
    let su = db.connect_superuser().await?;
    su.execute_unprepared(USERS_AND_MEMBERS).await?;
    let users = checksum(&su, "public.users").await?;
    let members = checksum(&su, "tenancy.tenant_users").await?;
    assert_eq!(users.0, 2);
    assert_eq!(login_found(&db).await?, 1, "lookup before m0011");

    run_as_owner(&db, Command::Up(None)).await?;
    assert_eq!(
        checksum(&su, "tenancy.users").await?,
        users,
        "a user changed"
    );
    assert_eq!(checksum(&su, "tenancy.tenant_users").await?, members);
    assert_eq!(
        scalar_i64(
            &su,
            "SELECT count(*) FROM (SELECT to_regclass('public.users') r) x WHERE r IS NOT NULL"
        )
        .await?,
        0,
        "public.users is still there"
    );
    assert_eq!(
        scalar_i64(
            &su,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'tenant_users_user_id_fkey' \
             AND confrelid = 'tenancy.users'::regclass"
        )
        .await?,
        1,
        "memberships no longer reference the moved table"
    );
    assert_eq!(login_found(&db).await?, 1, "lookup after m0011");
    // The app still sees only its tenant's members (the policies moved with the table).
    let app = db.connect(LoginRole::App, 1).await?;
    assert_eq!(
        scalar_i64(&app, "SELECT count(*) FROM tenancy.users").await?,
        0
    );
    let txn = sea_orm::TransactionTrait::begin(&app).await?;
    txn.execute_unprepared(&format!(
        "SET LOCAL tenantry.tenant_id = '{DEFAULT_TENANT}'"
    ))
    .await?;
    assert_eq!(
        scalar_i64(&txn, "SELECT count(*) FROM tenancy.users").await?,
        2
    );
    txn.commit().await?;
    app.close().await?;

    // Down to just before m0011, however many migrations come after it.
    let since_m0011 = common::migrations_since("m0011_identity_schema")?;
    run_as_owner(&db, Command::Down(Some(since_m0011))).await?;
    assert_eq!(
        checksum(&su, "public.users").await?,
        users,
        "down changed a user"
    );
    assert_eq!(checksum(&su, "tenancy.tenant_users").await?, members);
    assert_eq!(login_found(&db).await?, 1, "lookup after down");
    su.close().await?;
    Ok(())
}
