//! `test-isolation --from-database`: the matrix runs against a clone of a database that lives
//! in another cluster (migrated there by our own migrations), passes, and leaves the source
//! exactly as it was; an unreachable URL and a database without Tenantry's core get clear errors.
//! A source whose trigger writes back into it through `postgres_fdw` is not written by the clone
//! (its foreign servers and user mappings are neutralised before any row or trigger is
//! restored), and a source with `dblink` is refused, as is one with a file_fdw foreign table
//! (whose `program` would run on the harness host) or a function in an untrusted language.

use std::process::Command as Process;

use anyhow::{Context, bail};
use migration::run::{self, Command};
use sea_orm::ConnectionTrait;
use tenantry_tests::cluster::{BOOTSTRAP_SUPERUSER, Cluster};
use tenantry_tests::databases::connect;
use tenantry_tests::isolation::clone::clone_database;
use tenantry_tests::isolation::{self, IsolationTarget};
use tenantry_tests::logins::{OWNER_LOGIN, create_logins, grant_logins};

/// Everything in the database, schema and rows, as `pg_dump` prints it (minus the per-run
/// `\restrict` key lines).
fn full_dump(cluster: &Cluster, url: &str) -> anyhow::Result<String> {
    let out = Process::new(cluster.binaries().path("pg_dump"))
        .args(["--no-password", "-d", url])
        .output()
        .context("running pg_dump")?;
    if !out.status.success() {
        bail!("pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The user's database: a cluster of its own with database `app` migrated by our migrations;
/// returns the cluster and the bootstrap superuser's URL of `app`.
async fn migrated_source() -> anyhow::Result<(Cluster, String)> {
    let source = Cluster::start_ephemeral()?;
    let su = connect(&source.url(BOOTSTRAP_SUPERUSER, "postgres"), 1).await?;
    create_logins(&su).await?;
    su.execute_unprepared(&format!("CREATE DATABASE app OWNER {OWNER_LOGIN}"))
        .await?;
    su.close().await?;
    let owner = run::connect(&source.url(OWNER_LOGIN, "app")).await?;
    run::run(&owner, Command::Up(None)).await?;
    grant_logins(&owner).await?;
    owner.close().await?;
    let url = source.url(BOOTSTRAP_SUPERUSER, "app");
    Ok((source, url))
}

#[tokio::test]
async fn a_database_migrated_elsewhere_passes_and_is_left_untouched() -> anyhow::Result<()> {
    // The user's database: its own cluster, migrated by our migrations, with a tenant's rows.
    let (source, source_url) = migrated_source().await?;
    let su = connect(&source_url, 1).await?;
    su.execute_unprepared(
        "INSERT INTO tenancy.tenants (id, name, slug) VALUES ('c0000000-0000-0000-0000-00000000000c', 'Gamma', 'gamma');
         INSERT INTO public.projects (tenant_id, name) VALUES ('c0000000-0000-0000-0000-00000000000c', 'gamma project');",
    )
    .await?;
    su.close().await?;
    let before = full_dump(&source, &source_url)?;

    let clone = clone_database(&source_url).await?;
    assert!(clone.has_legacy_role);
    let db = &clone.db;
    let report = isolation::run(&IsolationTarget::for_db(db, 40)).await?;
    assert!(report.passed(), "{report}");
    assert!(report.matrix.len() >= 8, "{report}");
    assert_eq!(report.legacy.len(), report.matrix.len(), "{report}");
    // The clone holds the source's rows; the source is byte for byte what it was.
    let cloned = connect(&db.superuser_url(), 1).await?;
    let n = cloned
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) FROM public.projects WHERE name = 'gamma project'",
        ))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?;
    assert_eq!(n, Some(1));
    cloned.close().await?;
    assert!(
        before == full_dump(&source, &source_url)?,
        "the source database changed"
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_and_non_tenantry_databases_get_clear_errors() -> anyhow::Result<()> {
    // Port 1 on loopback: nothing listens there.
    let err = clone_database("postgres://someone:secret@127.0.0.1:1/app")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("cannot connect to the source database postgres://someone@127.0.0.1:1/app"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    let empty = tenantry_tests::empty_db().await?;
    let err = clone_database(&empty.superuser_url())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("has no Tenantry core"), "{err}");
    Ok(())
}

async fn count(db: &sea_orm::DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            sql,
        ))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(-1))
}

#[tokio::test]
async fn a_trigger_writing_back_through_postgres_fdw_does_not_reach_the_source_and_dblink_is_refused()
-> anyhow::Result<()> {
    let (source, source_url) = migrated_source().await?;
    let su = connect(&source_url, 1).await?;
    // A foreign server pointing back at the source, a mapping anyone may use, a foreign table
    // over the source's canary, and a trigger on a tenant table writing into it.
    // (Separate statements: the foreign write connects anew and sees only committed tables.)
    su.execute_unprepared("CREATE TABLE public.canary (what text)")
        .await?;
    su.execute_unprepared(&format!(
        "CREATE EXTENSION postgres_fdw;
         CREATE SERVER back FOREIGN DATA WRAPPER postgres_fdw
           OPTIONS (host '127.0.0.1', port '{port}', dbname 'app');
         CREATE USER MAPPING FOR PUBLIC SERVER back
           OPTIONS (user '{BOOTSTRAP_SUPERUSER}', password_required 'false');
         CREATE FOREIGN TABLE public.canary_remote (what text) SERVER back
           OPTIONS (schema_name 'public', table_name 'canary');
         GRANT INSERT ON public.canary_remote TO PUBLIC;
         CREATE FUNCTION public.tell_source() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO public.canary_remote VALUES (NEW.name); RETURN NEW; END$$;
         CREATE TRIGGER tell_source AFTER INSERT ON public.projects
           FOR EACH ROW EXECUTE FUNCTION public.tell_source();
         INSERT INTO tenancy.tenants (id, name, slug) VALUES ('c0000000-0000-0000-0000-00000000000c', 'Gamma', 'gamma');",
        port = source.port()
    ))
    .await?;
    su.execute_unprepared(
        "INSERT INTO public.projects (tenant_id, name) \
         VALUES ('c0000000-0000-0000-0000-00000000000c', 'gamma project')",
    )
    .await?;
    // At the source the trigger does write back: the canary shows it.
    assert_eq!(count(&su, "SELECT count(*) FROM public.canary").await?, 1);

    let clone = clone_database(&source_url).await?;
    let cloned = connect(&clone.db.superuser_url(), 1).await?;
    assert_eq!(
        count(&cloned, "SELECT count(*) FROM pg_user_mappings").await?,
        0,
        "user mappings survived into the clone"
    );
    // The trigger fires in the clone and its write fails there instead of reaching the source.
    let write = cloned
        .execute_unprepared(
            "INSERT INTO public.projects (tenant_id, name) \
             VALUES ('c0000000-0000-0000-0000-00000000000c', 'written in the clone')",
        )
        .await;
    assert!(write.is_err(), "the clone's foreign write succeeded");
    cloned.close().await?;
    // The harness seeds and attacks the clone (the trigger now fails there, which may fail
    // the run; what matters here is where the writes go).
    let _ = isolation::run(&IsolationTarget::for_db(&clone.db, 40)).await;
    assert_eq!(
        count(&su, "SELECT count(*) FROM public.canary").await?,
        1,
        "the clone wrote into the source"
    );

    // dblink connects by connection string, without a server: refused before anything is copied.
    su.execute_unprepared("CREATE EXTENSION dblink").await?;
    let err = clone_database(&source_url)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("has dblink"), "{err}");
    su.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_source_whose_objects_would_run_code_on_the_host_is_refused_before_anything_is_copied()
-> anyhow::Result<()> {
    let (source, source_url) = migrated_source().await?;
    let su = connect(&source_url, 1).await?;
    // file_fdw's `program` runs a shell command as the cluster's system user whenever the
    // foreign table is read: creating the materialized view reads it (at the source, which
    // proves the marker works); a clone restoring the view would run it on the harness host.
    let marker =
        std::env::temp_dir().join(format!("tenantry_clone_escape_{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    su.execute_unprepared(&format!(
        "CREATE EXTENSION file_fdw;
         CREATE SERVER feed_srv FOREIGN DATA WRAPPER file_fdw;
         CREATE FOREIGN TABLE public.feed (x text) SERVER feed_srv
           OPTIONS (program 'id > {m}; echo hi');
         CREATE MATERIALIZED VIEW public.feed_mv AS SELECT x FROM public.feed;",
        m = marker.display()
    ))
    .await?;
    assert!(marker.exists(), "the program did not run at the source");
    std::fs::remove_file(&marker)?;
    let before = full_dump(&source, &source_url)?;
    assert!(!marker.exists(), "pg_dump ran the program");
    let err = clone_database(&source_url)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(!marker.exists(), "the clone ran the source's program");
    assert!(
        err.contains("foreign table public.feed (wrapper file_fdw)"),
        "{err}"
    );
    assert!(err.contains("nothing was copied"), "{err}");
    assert!(
        before == full_dump(&source, &source_url)?,
        "the source database changed"
    );

    // An untrusted language (no plpython3u or plperlu here): a stub declared without TRUSTED,
    // with PL/pgSQL's handler and no validator, so its function is never run, only seen.
    su.execute_unprepared(
        "DROP EXTENSION file_fdw CASCADE;
         CREATE LANGUAGE stubu HANDLER plpgsql_call_handler;
         CREATE FUNCTION public.shell_out() RETURNS integer LANGUAGE stubu AS 'BEGIN RETURN 1; END';",
    )
    .await?;
    let err = clone_database(&source_url)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("function public.shell_out() (untrusted language stubu)"),
        "{err}"
    );
    // Without them the same source clones again.
    su.execute_unprepared("DROP LANGUAGE stubu CASCADE").await?;
    clone_database(&source_url).await?;
    su.close().await?;
    Ok(())
}
