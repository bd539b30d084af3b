use migration::run::{self, Command};
use tenantry_tests::logins::LoginRole;

#[tokio::test]
async fn scratch() -> anyhow::Result<()> {
    unsafe { std::env::set_var("TENANTRY_LOCK_TIMEOUT", "10min") };
    for i in 0..3 {
        let db = tenantry_tests::empty_db().await?;
        let a = run::connect(&db.url(LoginRole::Owner)).await?;
        let b = run::connect(&db.url(LoginRole::Owner)).await?;
        let (ra, rb) = tokio::join!(
            run::run(&a, Command::Up(None)),
            run::run(&b, Command::Up(None))
        );
        println!(
            "RESULT {i}: a={:?} b={:?}",
            ra.map_err(|e| e.to_string()),
            rb.map_err(|e| e.to_string())
        );
    }
    Ok(())
}
