//! Helpers shared by the migration integration tests (each test binary includes this module
//! with `mod common;` and uses only part of it).
#![allow(dead_code)]

use std::process::Command as Process;

use anyhow::{Context, bail};
use migration::run::{self, Command};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tenantry_tests::TestDb;
use tenantry_tests::logins::{LoginRole, grant_logins};

/// The default tenant every legacy row is assigned to.
pub const DEFAULT_TENANT: &str = migration::names::DEFAULT_TENANT_ID;

/// Every migration, in order, as recorded in `seaql_migrations`.
pub fn all_migration_names() -> Vec<String> {
    migration::planned()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// How many migrations `down` rolls back to undo `name` and every migration after it, however
/// many come after it.
pub fn migrations_since(name: &str) -> anyhow::Result<u32> {
    let since = migration::planned()
        .iter()
        .rev()
        .take_while(|m| m.name != name)
        .count()
        + 1;
    Ok(u32::try_from(since)?)
}

/// Serialises migration runs of different databases within one test process.
///
/// The runner's advisory lock is per database, but the security migration creates and drops
/// cluster-global roles (`CREATE ROLE` guarded by a `NOT EXISTS` check): two databases of one
/// cluster migrated at the same moment can both pass the check and one fails with
/// `duplicate key value violates unique constraint "pg_authid_rolname_index"`.
pub static CLUSTER_DDL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// [`tenantry_tests::migrated_db`] under [`CLUSTER_DDL`] (its first call migrates the template).
pub async fn migrated_db() -> anyhow::Result<TestDb> {
    let _guard = CLUSTER_DDL.lock().await;
    Ok(tenantry_tests::migrated_db().await?)
}

/// Runs one runner command as the owner on its own single-connection pool, as the CLI does,
/// under [`CLUSTER_DDL`].
pub async fn run_as_owner(db: &TestDb, command: Command) -> Result<(), DbErr> {
    let _guard = CLUSTER_DDL.lock().await;
    let conn = run::connect(&db.url(LoginRole::Owner)).await?;
    let result = run::run(&conn, command).await;
    conn.close().await?;
    result
}

/// Migrates an empty database all the way up as the owner and grants the logins their roles.
pub async fn migrate_fully(db: &TestDb) -> anyhow::Result<()> {
    run_as_owner(db, Command::Up(None)).await?;
    let _guard = CLUSTER_DDL.lock().await;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    grant_logins(&owner).await?;
    owner.close().await?;
    Ok(())
}

/// `pg_dump --schema-only` of the database, taken as the bootstrap superuser with the cluster's
/// own `pg_dump`. Owners and privileges are kept: they are part of what the migrations build.
///
/// PostgreSQL 15.14+ brackets every dump with `\restrict <key>` / `\unrestrict <key>`, where the
/// key is random per run (CVE-2025-8714 hardening); those two lines are the only ones that
/// legitimately differ between two dumps of the same schema, so they are removed.
pub fn schema_dump(db: &TestDb) -> anyhow::Result<String> {
    let cluster = tenantry_tests::shared_cluster()?;
    let pg_dump = cluster.binaries().path("pg_dump");
    let out = Process::new(&pg_dump)
        .args(["--schema-only", "--no-password", "-d"])
        .arg(db.superuser_url())
        .output()
        .with_context(|| format!("running {}", pg_dump.display()))?;
    if !out.status.success() {
        bail!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8(out.stdout).context("pg_dump output is not UTF-8")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Asserts two dumps are equal, printing the first differing lines rather than two huge strings.
pub fn assert_same_schema(left: &str, right: &str, what: &str) {
    if left == right {
        return;
    }
    let l: Vec<&str> = left.lines().collect();
    let r: Vec<&str> = right.lines().collect();
    let first = l
        .iter()
        .zip(r.iter())
        .position(|(a, b)| a != b)
        .unwrap_or(l.len().min(r.len()));
    let from = first.saturating_sub(3);
    panic!(
        "{what}: schemas differ ({} vs {} lines) from line {}:\n--- left\n{}\n--- right\n{}",
        l.len(),
        r.len(),
        first + 1,
        l[from..l.len().min(first + 12)].join("\n"),
        r[from..r.len().min(first + 12)].join("\n"),
    );
}

/// A raw statement.
pub fn sql(text: impl Into<String>) -> Statement {
    Statement::from_string(DbBackend::Postgres, text.into())
}

/// The first column of the first row, as i64 (e.g. `count(*)`).
pub async fn scalar_i64<C: ConnectionTrait>(conn: &C, query: &str) -> Result<i64, DbErr> {
    let row = conn
        .query_one_raw(sql(query))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(query.to_owned()))?;
    row.try_get_by_index::<i64>(0)
}

/// The first column of every row, as text.
pub async fn strings<C: ConnectionTrait>(conn: &C, query: &str) -> Result<Vec<String>, DbErr> {
    conn.query_all_raw(sql(query))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect()
}

/// Names recorded in `seaql_migrations`, in version order.
pub async fn applied(conn: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    strings(
        conn,
        "SELECT version FROM public.seaql_migrations ORDER BY version",
    )
    .await
}

/// Every row of `table` as canonical JSON text without its `tenant_id`, ordered by `id`:
/// the row's content as the legacy application knew it.
pub async fn rows_without_tenant<C: ConnectionTrait>(
    conn: &C,
    table: &str,
) -> Result<Vec<String>, DbErr> {
    rows_without(conn, table, &["tenant_id"]).await
}

/// Every row of `table` as canonical JSON text without the `dropped` columns, ordered by `id`.
pub async fn rows_without<C: ConnectionTrait>(
    conn: &C,
    table: &str,
    dropped: &[&str],
) -> Result<Vec<String>, DbErr> {
    let minus: String = dropped.iter().map(|c| format!(" - '{c}'")).collect();
    strings(
        conn,
        &format!("SELECT (to_jsonb(t){minus})::text FROM {table} t ORDER BY t.id"),
    )
    .await
}

/// Path of the `migration` CLI binary, built once per process with the cargo running the tests
/// (`cargo test` builds only this package's targets, not other packages' binaries).
pub fn migration_binary() -> anyhow::Result<std::path::PathBuf> {
    static BIN: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    BIN.get_or_init(|| build_binary("migration", "migration").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Builds binary `bin` of workspace package `package` (once per call) and returns its path.
pub fn build_binary(package: &str, bin: &str) -> anyhow::Result<std::path::PathBuf> {
    // The test executable is <target>/<profile>/deps/<name>-<hash>; the bin lands in
    // <target>/<profile>. The nested cargo inherits CARGO_TARGET_DIR and friends, so it builds
    // into the same directory.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no <target>/<profile>/deps parent")?
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Process::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .with_context(|| format!("running cargo build -p {package}"))?;
    if !out.status.success() {
        bail!(
            "cargo build -p {package} --bin {bin} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = profile_dir.join(bin);
    if !path.is_file() {
        bail!("{} not found after building", path.display());
    }
    Ok(path)
}

/// What one run of the CLI printed.
#[derive(Debug)]
pub struct CliRun {
    /// Whether it exited 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `migration <args>` against `url` (via `DATABASE_URL`), from an empty directory so no
/// `.env` is picked up, with the default log filter.
pub fn run_cli(url: &str, args: &[&str]) -> anyhow::Result<CliRun> {
    let bin = migration_binary()?;
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tenantry-cli-{}-{seq}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = Process::new(&bin)
        .args(args)
        .env("DATABASE_URL", url)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .current_dir(&dir)
        .output()
        .with_context(|| format!("running {}", bin.display()));
    let _ = std::fs::remove_dir(&dir);
    let out = out?;
    Ok(CliRun {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
