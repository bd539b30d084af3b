//! `test-isolation --from-database URL`: the attack matrix against a *clone* of an existing
//! database, never the database itself.
//!
//! The source is only read: a catalog connection with `default_transaction_read_only = on` (the
//! Tenantry core must be there, and the roles it uses are listed) and `pg_dump` (a read-only
//! snapshot). Into a fresh database of the harness's ephemeral cluster go, in order: every role
//! of the source with its attributes (`SUPERUSER`, `BYPASSRLS`, `CREATEROLE`, `CREATEDB`,
//! `INHERIT`; never `LOGIN` or a password) and its memberships, so owners, grants and the
//! audit's role checks mean what they mean at the source; then the dump (one `pg_dump` snapshot
//! in custom format, restored as the bootstrap superuser section by section); then the
//! harness's logins join the group roles (`tenantry_app`, `tenantry_superadmin`, and
//! `tenantry_legacy` when the source has it), and when schema `tenancy` is owned by another
//! role than `tenantry_owner` (a user's own database is owned by their login), the clone's
//! database is given to that role and the harness's owner login joins it (a superuser owner is
//! refused rather than shared).
//!
//! **The clone never reaches out.** A restored foreign server still points where the source's
//! does, often at the source itself: a trigger writing a foreign table would write into the
//! real database while the harness seeds and attacks the clone. So after the schema (pre-data)
//! is restored and before any row is loaded, any materialized view refreshed or any trigger
//! created, every user mapping of the clone is dropped and every foreign server loses its
//! options (a `postgres_fdw` one is pointed at `127.0.0.1:1`, where nothing listens): a write
//! through them fails in the clone instead of landing anywhere. A source with `dblink` (which
//! connects with a connection string of its own, no server needed) is refused before anything
//! is copied, and so is a source with anything that would run code on the harness host:
//! foreign tables of a wrapper other than `postgres_fdw` (file_fdw's `program` option runs a
//! shell command, its `filename` reads a host file, when a materialized view over it is
//! refreshed during the restore or the table is read) and functions in an untrusted language
//! (`plpython3u`, `plperlu`: they run with the rights of the cluster's system user).

use std::process::{Command, Stdio};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::HarnessError;

/// Held while a clone changes the cluster's roles (creating them, their attributes and
/// memberships): roles are cluster-global, and two clones into the same cluster at once (tests
/// of one binary share it) updating one role's row fail with "tuple concurrently updated".
static CLUSTER_ROLES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
use crate::databases::{TestDb, connect, empty_db, shared_cluster};
use crate::logins::{APP_LOGIN, LEGACY_LOGIN, OWNER_LOGIN, SUPERADMIN_LOGIN};
use migration::dedicated::DEDICATED_ROLE;
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
    let dblink = source
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'dblink') \
                 OR EXISTS (SELECT FROM pg_catalog.pg_proc WHERE probin LIKE '%dblink%')",
        ))
        .await?
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false);
    if dblink {
        return Err(HarnessError::Io(format!(
            "{shown} has dblink: a function or trigger of the clone could connect with it to the \
             source (or anywhere) and write there while the harness seeds and attacks the clone; \
             --from-database refuses such a source. Run it against a copy without dblink \
             (`DROP EXTENSION dblink CASCADE` in that copy)"
        )));
    }
    let runs_code = code_on_host(source).await?;
    if !runs_code.is_empty() {
        return Err(HarnessError::Io(format!(
            "{shown} has objects that would run code or read files on the harness host when the \
             clone restores, refreshes or queries them (as the cluster's system user): {}; \
             --from-database refuses such a source (nothing was copied). Run it against a copy \
             without them (drop those foreign tables and functions, or the extension or language, \
             in that copy)",
            runs_code.join(", ")
        )));
    }
    let roles = role_statements(source).await?;
    let db = empty_db().await?;
    let su = connect(&db.superuser_url(), 1).await?;
    {
        let _roles = CLUSTER_ROLES.lock().await;
        for sql in &roles {
            su.execute_unprepared(sql).await?;
        }
    }
    su.close().await.map_err(HarnessError::from)?;
    let dump = Dump::take(source_url, shown, &db)?;
    dump.restore(&db, "pre-data")?;
    let su = connect(&db.superuser_url(), 1).await?;
    neutralise_foreign_servers(&su).await?;
    su.close().await.map_err(HarnessError::from)?;
    dump.restore(&db, "data")?;
    dump.restore(&db, "post-data")?;
    drop(dump);
    let su = connect(&db.superuser_url(), 1).await?;
    // The app login also enters dedicated tenants' roles (through the NOINHERIT
    // `tenantry_dedicated`), whether the source has dedicated tenants or the matrix provisions them.
    let mut logins = vec![
        (APP_ROLE, APP_LOGIN),
        (SUPERADMIN_ROLE, SUPERADMIN_LOGIN),
        (DEDICATED_ROLE, APP_LOGIN),
    ];
    if has_legacy_role {
        logins.push((LEGACY_ROLE, LEGACY_LOGIN));
    }
    let roles_guard = CLUSTER_ROLES.lock().await;
    for (role, login) in logins {
        su.execute_unprepared(&format!(
            "DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
             GRANT {role} TO {login}; END IF; END $$"
        ))
        .await?;
    }
    // The migrations ran as the source's owner login: the harness's owner acts through it.
    su.execute_unprepared(&format!(
        "DO $$ DECLARE o name; sup boolean; BEGIN \
           SELECT r.rolname, r.rolsuper INTO o, sup FROM pg_catalog.pg_namespace n \
             JOIN pg_catalog.pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'tenancy'; \
           IF o IS DISTINCT FROM '{OWNER_LOGIN}' THEN \
             IF sup THEN RAISE EXCEPTION 'schema tenancy is owned by the superuser %: run the \
               migrations and the adoption as a non-superuser owner login (with CREATEROLE)', o; \
             END IF; \
             EXECUTE format('GRANT %I TO {OWNER_LOGIN}', o); \
             EXECUTE format('ALTER DATABASE %I OWNER TO %I', current_database(), o); \
           END IF; END $$"
    ))
    .await?;
    drop(roles_guard);
    su.close().await.map_err(HarnessError::from)?;
    Ok(ClonedDatabase {
        db,
        has_legacy_role,
    })
}

/// What in the source would run code (or read the host's files) with the harness host's rights
/// once restored: foreign tables of any wrapper but `postgres_fdw` (file_fdw's `program` and
/// `filename` options are on the foreign table, and a materialized view over one reads it while
/// it is restored), and functions in an untrusted language (`plpython3u`, `plperlu`, ...; `c`
/// and `internal` are PostgreSQL's and extensions' own). Each is named, e.g.
/// `foreign table public.feed (wrapper file_fdw)`.
pub async fn code_on_host(source: &DatabaseConnection) -> Result<Vec<String>, HarnessError> {
    let rows = source
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            CODE_ON_HOST_SQL,
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).map_err(HarnessError::from))
        .collect()
}

/// The catalog query of [`code_on_host`].
pub const CODE_ON_HOST_SQL: &str = "\
    SELECT format('foreign table %I.%I (wrapper %s)', n.nspname, c.relname, w.fdwname) \
    FROM pg_catalog.pg_foreign_table ft JOIN pg_catalog.pg_class c ON c.oid = ft.ftrelid \
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver \
    JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw \
    WHERE w.fdwname <> 'postgres_fdw' \
    UNION ALL \
    SELECT format('function %I.%I(%s) (untrusted language %s)', n.nspname, p.proname, \
      pg_catalog.pg_get_function_identity_arguments(p.oid), l.lanname) \
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
    WHERE NOT l.lanpltrusted AND l.lanname NOT IN ('internal', 'c') \
    ORDER BY 1";

/// `CREATE ROLE` (or `ALTER ROLE`, for roles the cluster has) with the source's attributes,
/// then the memberships, for every role but PostgreSQL's own and the bootstrap superuser.
async fn role_statements(source: &DatabaseConnection) -> Result<Vec<String>, HarnessError> {
    let rows = source
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT format('DO $r$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %L) THEN \
                CREATE ROLE %I NOLOGIN; END IF; \
                EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $r$; ALTER ROLE %I %s %s %s %s %s', \
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

/// Drops every user mapping of the clone and every foreign server's options (a
/// `postgres_fdw` server is pointed at `127.0.0.1:1`), so nothing in the clone can connect to
/// the source or anywhere else through them; checks that none is left.
async fn neutralise_foreign_servers(su: &DatabaseConnection) -> Result<(), HarnessError> {
    su.execute_unprepared(
        "DO $n$ DECLARE r record; BEGIN \
           FOR r IN SELECT um.srvname, CASE WHEN um.umuser = 0 THEN 'PUBLIC' \
                      ELSE quote_ident(um.usename) END AS who FROM pg_catalog.pg_user_mappings um LOOP \
             EXECUTE format('DROP USER MAPPING FOR %s SERVER %I', r.who, r.srvname); \
           END LOOP; \
           FOR r IN SELECT s.srvname, o.option_name FROM pg_catalog.pg_foreign_server s, \
                      pg_catalog.pg_options_to_table(s.srvoptions) o LOOP \
             EXECUTE format('ALTER SERVER %I OPTIONS (DROP %I)', r.srvname, r.option_name); \
           END LOOP; \
           FOR r IN SELECT s.srvname FROM pg_catalog.pg_foreign_server s \
                      JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw \
                      WHERE w.fdwname = 'postgres_fdw' LOOP \
             EXECUTE format('ALTER SERVER %I OPTIONS (ADD host %L, ADD port %L)', \
                            r.srvname, '127.0.0.1', '1'); \
           END LOOP; \
         END $n$",
    )
    .await?;
    let left = su
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT (SELECT count(*) FROM pg_catalog.pg_user_mappings) \
                  + (SELECT count(*) FROM pg_catalog.pg_foreign_server s \
                     JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw \
                     WHERE w.fdwname <> 'postgres_fdw' AND s.srvoptions IS NOT NULL \
                       AND cardinality(s.srvoptions) > 0)",
        ))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    if left != 0 {
        return Err(HarnessError::Io(
            "the clone still has user mappings or foreign server options after neutralising them"
                .into(),
        ));
    }
    Ok(())
}

/// One `pg_dump` snapshot of the source in custom format, in the harness cluster's directory;
/// removed when dropped.
struct Dump {
    path: std::path::PathBuf,
}

impl Drop for Dump {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Dump {
    fn take(source_url: &str, shown: &str, db: &TestDb) -> Result<Self, HarnessError> {
        let cluster = shared_cluster()?;
        let dump = Self {
            path: cluster.dir().join(format!("clone-{}.dump", db.name)),
        };
        let out = Command::new(cluster.binaries().path("pg_dump"))
            .args(["--no-password", "--quote-all-identifiers", "-Fc", "-f"])
            .arg(&dump.path)
            .args(["-d", source_url])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| HarnessError::Io(format!("running pg_dump: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                command: format!("pg_dump {shown}"),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(dump)
    }

    /// Restores one section (`pre-data`, `data`, `post-data`) into the clone, stopping at the
    /// first error.
    fn restore(&self, db: &TestDb, section: &str) -> Result<(), HarnessError> {
        let bins = shared_cluster()?.binaries().clone();
        let out = Command::new(bins.path("pg_restore"))
            .args([
                "--no-password",
                "--exit-on-error",
                "--section",
                section,
                "-d",
            ])
            .arg(db.superuser_url())
            .arg(&self.path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| HarnessError::Io(format!("running pg_restore: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::Command {
                command: format!(
                    "pg_restore --section {section} (restoring the dump into the clone)"
                ),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }
}
