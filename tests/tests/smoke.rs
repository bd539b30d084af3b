use migration::audit;
use tenantry_tests::logins::LoginRole;

#[tokio::test]
async fn migrated_database_passes_the_catalog_audit() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let report = audit::audit_default(&owner).await?;
    println!("{report}");
    assert!(report.passed(), "{report}");
    Ok(())
}
