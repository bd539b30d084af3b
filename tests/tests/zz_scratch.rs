mod common;
use common::*;
use tenantry_tests::logins::LoginRole;

#[tokio::test]
async fn scratch() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;
    println!("acl: {:?}", strings(&su, "SELECT coalesce(defaclnamespace::regnamespace::text,'-') || ' ' || defaclobjtype::text || ' ' || defaclacl::text FROM pg_default_acl").await?);
    let owner = db.connect(LoginRole::Owner, 1).await?;
    use sea_orm::ConnectionTrait;
    owner.execute_unprepared("CREATE FUNCTION tenancy.probe_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'").await?;
    println!("proacl: {:?}", strings(&su, "SELECT coalesce(proacl::text,'NULL (default: PUBLIC EXECUTE)') FROM pg_proc WHERE proname='probe_fn'").await?);
    println!("public can exec: {:?}", strings(&su, "SELECT has_function_privilege('tenantry_superadmin_login', 'tenancy.probe_fn()', 'EXECUTE')::text").await?);
    Ok(())
}
