//! `test-isolation --from-database URL`: the attack matrix against a *clone* of an existing
//! database, never the database itself.
//!
//! The source is only read: a catalog connection with `default_transaction_read_only = on` (the
//! Tenantry core must be there, and the roles it uses are listed) and `pg_dump` (a read-only
//! snapshot). Into a fresh database of the harness's ephemeral cluster go, in order: every role
//! of the source with its attributes (`SUPERUSER`, `BYPASSRLS`, `CREATEROLE`, `CREATEDB`,
//! `INHERIT`; never `LOGIN` or a password) and its memberships, so owners, grants and the
//! audit's role checks mean what they mean at the source; then the dump (restored as the
//! bootstrap superuser); then the harness's logins join the group roles
//! (`tenantry_app`, `tenantry_superadmin`, and `tenantry_legacy` when the source has it).

use std::process::{Command, Stdio};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::HarnessError;
use crate::databases::{TestDb, connect, empty_db, shared_cluster};
use crate::logins::{APP_LOGIN, LEGACY_LOGIN, SUPERADMIN_LOGIN};
use migration::names::{APP_ROLE, LEGACY_ROLE, SUPERADMIN_ROLE};

/// A clone of the source database, ready for [`super::run`].
#[derive(Debug, Clone)]
pub struct ClonedDatabase {
    /// The clone, in the harness's cluster.
    pub db: TestDb,
    /// Whether the source has the legacy role (then the legacy login is attacked too).
    pub has_legacy_role: bool,
}

/// The URL without its password, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn read_only(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20default_transaction_read_only%3Don")
}

/// Clones the database at `source_url` into the harness's cluster. Errors name what is wrong
/// (unreachable, not a Tenantry database, `pg_dump` failed) and leave the source untouched.
pub async fn clone_database(source_url: &str) -> Result<ClonedDatabase, HarnessError> {
    let shown = redacted(source_url);
    // One attempt, so an unreachable server fails at once (a pool retries until its timeout).
    {
        use sqlx::Connection;
        let probe = sqlx::PgConnection::connect(source_url).await.map_err(|e| {
            HarnessError::Io(format!(
                "cannot connect to the source database {shown}: {e}"
            ))
        })?;
        let _ = probe.close().await;
    }
    let source = connect(&read_only(source_url), 1).await.map_err(|e| {
        HarnessError::Io(format!(
            "cannot connect to the source database {shown}: {e}"
        ))
    })?;
    let result = clone_from(&source, source_url, &shown).await;
    source.close().await.map_err(HarnessError::from)?;
    result
}

async fn clone_from(
    source: &DatabaseConnection,
    source_url: &str,
    shown: &str,
) -> Result<ClonedDatabase, HarnessError> {
    let core = source
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT to_regclass('tenancy.tenants') IS NOT NULL \
               AND to_regprocedure('tenancy.current_tenant_id()') IS NOT NULL \
               AND EXISTS (SELECT FROM pg_roles WHERE rolname = $1), \
             EXISTS (SELECT FROM pg_roles WHERE rolname = $2)",
            [APP_ROLE.into(), LEGACY_ROLE.into()],
        ))
        .await?;
    let (has_core, has_legacy_role) = match core {
        Some(r) => (
            r.try_get_by_index::<bool>(0)?,
            r.try_get_by_index::<bool>(1)?,
        ),
        None => (false, false),
    };
    if !has_core {
        return Err(HarnessError::Io(format!(
            "{shown} has no Tenantry core (schema tenancy with tenants and current_tenant_id(), \
             role {APP_ROLE}): migrate it first (`cargo run -p migration -- up`), then run this again"
        )));
    }
    let roles = role_statements(source).await?;
    let db = empty_db().await?;
    let su = connect(&db.superuser_url(), 1).await?;
    for sql in &roles {
        su.execute_unprepared(sql).await?;
    }
    su.close().await.map_err(HarnessError::from)?;
    dump_into(source_url, shown, &db)?;
    let su = connect(&db.superuser_url(), 1).await?;
    let mut logins = vec![(APP_ROLE, APP_LOGIN), (SUPERADMIN_ROLE, SUPERADMIN_LOGIN)];
    if has_legacy_role {
        logins.push((LEGACY_ROLE, LEGACY_LOGIN));
    }
    for (role, login) in logins {
        su.execute_unprepared(&format!(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
             GRANT {role} TO {login}; END IF; END $$"
        ))
        .await?;
    }
    su.close().await.map_err(HarnessError::from)?;
    Ok(ClonedDatabase {
        db,
        has_legacy_role,
    })
}

/// `CREATE ROLE` (or `ALTER ROLE`, for roles the cluster has) with the source's attributes,
/// then the memberships, for every role but PostgreSQL's own and the bootstrap superuser.
async fn role_statements(source: &DatabaseConnection) -> Result<Vec<String>, HarnessError> {
    let rows = source
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT format('DO $r$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %L) THEN \
                CREATE ROLE %I NOLOGIN; END IF; END $r$; ALTER ROLE %I %s %s %s %s %s', \
                rolname, rolname, rolname, \
                CASE WHEN rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END, \
                CASE WHEN rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END, \
                CASE WHEN rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END, \
                CASE WHEN rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END, \
                CASE WHEN rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END) \
             FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> 'postgres' ORDER BY rolname",
        ))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        out.push(r.try_get_by_index::<String>(0)?);
    }
    let rows = source
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT format('GRANT %I TO %I', g.rolname, m.rolname) \
             FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member \
             WHERE m.rolname !~ '^pg_' AND m.rolname <> 'postgres' AND g.rolname <> 'postgres' \
             ORDER BY 1",
        ))
        .await?;
    for r in rows {
        out.push(r.try_get_by_index::<String>(0)?);
    }
    Ok(out)
}

/// `pg_dump source | psql clone`, stopping at the first error.
fn dump_into(source_url: &str, shown: &str, db: &TestDb) -> Result<(), HarnessError> {
    let bins = shared_cluster()?.binaries().clone();
    let mut dump = Command::new(bins.path("pg_dump"))
        .args(["--no-password", "--quote-all-identifiers", "-d", source_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::Io(format!("running pg_dump: {e}")))?;
    let Some(stdout) = dump.stdout.take() else {
        return Err(HarnessError::Io("pg_dump: no output".into()));
    };
    let restore = Command::new(bins.path("psql"))
        .args(["--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(db.superuser_url())
        .stdin(stdout)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| HarnessError::Io(format!("running psql: {e}")))?;
    let dumped = dump
        .wait_with_output()
        .map_err(|e| HarnessError::Io(format!("pg_dump: {e}")))?;
    if !dumped.status.success() {
        return Err(HarnessError::Command {
            command: format!("pg_dump {shown}"),
            detail: String::from_utf8_lossy(&dumped.stderr).trim().to_owned(),
        });
    }
    if !restore.status.success() {
        return Err(HarnessError::Command {
            command: "psql (restoring the dump into the clone)".into(),
            detail: String::from_utf8_lossy(&restore.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
