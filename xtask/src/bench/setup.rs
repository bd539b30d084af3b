//! Fixtures and helpers: the machine description, raw-SQL helpers, and the bulk loads
//! (`INSERT ... SELECT generate_series` as the bootstrap superuser, then `VACUUM (ANALYZE)`).

use std::time::Instant;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, Value};
use tenantry_tests::TestDb;
use tenantry_tests::databases::connect;
use uuid::Uuid;

use super::report::Machine;

/// The `uuid` of bench tenant `i` (1-based): `00000000-0000-4000-8000-<i in 12 hex digits>`.
pub fn tenant_uuid(i: u64) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000u128 | u128::from(i))
}

/// The same as [`tenant_uuid`], in SQL, for a `bigint` expression `g`.
pub fn tenant_uuid_sql(g: &str) -> String {
    format!("('00000000-0000-4000-8000-' || lpad(to_hex({g}), 12, '0'))::uuid")
}

/// The user who owns every bench tenant.
pub const BENCH_OWNER: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_ffff_0000_0001);

/// Runs one statement with bind values; returns rows affected.
pub async fn exec<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<Value>,
) -> anyhow::Result<u64> {
    let res = db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {}", first_line(sql)))?;
    Ok(res.rows_affected())
}

/// Runs SQL text with the simple protocol (several statements allowed).
pub async fn exec_text<C: ConnectionTrait>(db: &C, sql: &str) -> anyhow::Result<()> {
    db.execute_unprepared(sql)
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {}", first_line(sql)))?;
    Ok(())
}

/// Rows of a query with bind values.
pub async fn rows<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<Value>,
) -> anyhow::Result<Vec<QueryResult>> {
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {}", first_line(sql)))
}

/// The first text column of every row (EXPLAIN output, settings).
pub async fn text_lines<C: ConnectionTrait>(db: &C, sql: &str) -> anyhow::Result<Vec<String>> {
    let mut out = vec![];
    for r in rows(db, sql, vec![]).await? {
        out.push(r.try_get_by_index::<String>(0)?);
    }
    Ok(out)
}

fn first_line(sql: &str) -> String {
    let l = sql.trim().lines().next().unwrap_or_default();
    l.chars().take(120).collect()
}

/// Describes this machine and the server.
pub async fn machine(su: &DatabaseConnection) -> anyhow::Result<Machine> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let version = text_lines(su, "SELECT version()").await?.join("");
    let settings = text_lines(
        su,
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) \
         FROM pg_settings WHERE name IN ('shared_buffers', 'fsync', 'synchronous_commit', \
         'max_connections', 'work_mem', 'jit')",
    )
    .await?
    .join("");
    Ok(Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory_gib: kib / 1024.0 / 1024.0,
        postgres: version,
        postgres_settings: settings,
        profile: if cfg!(debug_assertions) {
            "dev (unoptimized: `cargo xtask bench`)".into()
        } else {
            "release".into()
        },
        loadavg_at_start: loadavg,
    })
}

/// The migrated database of scenarios 1, 2 and 5: `tenants` bench tenants, one owner user who
/// is a member of all of them, and `rows` projects spread round-robin over the tenants (so a
/// tenant's rows are scattered over the whole heap, as in an append-only multi-tenant table).
pub struct Fixture {
    /// The database.
    pub db: TestDb,
    /// Number of tenants.
    pub tenants: u64,
    /// Sampled `(tenant_id, id)` pairs of existing projects.
    pub samples: Vec<(Uuid, Uuid)>,
    /// Seconds the load took.
    pub load_s: f64,
}

/// Builds the fixture.
pub async fn fixture(tenants: u64, rows: u64) -> anyhow::Result<Fixture> {
    let started = Instant::now();
    let db = tenantry_tests::migrated_db().await?;
    let su = connect(&db.superuser_url(), 1).await?;
    tracing::info!(db = %db.name, tenants, rows, "loading the bench fixture");
    let tid = tenant_uuid_sql("g");
    exec_text(
        &su,
        &format!(
            "INSERT INTO tenancy.tenants (id, name, slug, plan, status) \
             SELECT {tid}, 'Bench tenant ' || g, 'bench-' || g, 'pro', 'active' \
             FROM generate_series(1::bigint, {tenants}::bigint) g"
        ),
    )
    .await?;
    exec(
        &su,
        "INSERT INTO tenancy.users (id, email, full_name) VALUES ($1, 'bench-owner@example.invalid', 'Bench Owner')",
        vec![BENCH_OWNER.into()],
    )
    .await?;
    exec(
        &su,
        &format!(
            "INSERT INTO tenancy.tenant_users (tenant_id, user_id, role) \
             SELECT {tid}, $1, 'owner' FROM generate_series(1::bigint, {tenants}::bigint) g"
        ),
        vec![BENCH_OWNER.into()],
    )
    .await?;
    load_projects(&su, "public.projects", tenants, rows, true).await?;
    exec_text(&su, "VACUUM (ANALYZE) public.projects").await?;
    exec_text(
        &su,
        "ANALYZE tenancy.tenants; ANALYZE tenancy.tenant_users; ANALYZE tenancy.users",
    )
    .await?;
    let samples = sample_keys(&su, "public.projects", 4000).await?;
    su.close().await?;
    Ok(Fixture {
        db,
        tenants,
        samples,
        load_s: started.elapsed().as_secs_f64(),
    })
}

/// Inserts `rows` tenant rows into `table` (columns of `public.projects`) in chunks.
/// `skip_triggers` loads with `session_replication_role = replica`, which skips the
/// foreign-key triggers (every referenced tenant exists by construction).
pub async fn load_projects(
    su: &DatabaseConnection,
    table: &str,
    tenants: u64,
    rows: u64,
    skip_triggers: bool,
) -> anyhow::Result<()> {
    if skip_triggers {
        exec_text(su, "SET session_replication_role = replica").await?;
    }
    let tid = tenant_uuid_sql(&format!("(g % {tenants} + 1)"));
    let chunk = 200_000u64;
    let mut lo = 1u64;
    while lo <= rows {
        let hi = (lo + chunk - 1).min(rows);
        exec_text(
            su,
            &format!(
                "INSERT INTO {table} (tenant_id, id, name, description, status, metadata, created_at, updated_at) \
                 SELECT {tid}, gen_random_uuid(), 'Project ' || g, 'Bench project number ' || g, 'active', \
                 jsonb_build_object('n', g), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', \
                 timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second' \
                 FROM generate_series({lo}::bigint, {hi}::bigint) g"
            ),
        )
        .await?;
        lo = hi + 1;
    }
    if skip_triggers {
        exec_text(su, "SET session_replication_role = DEFAULT").await?;
    }
    Ok(())
}

/// A random sample of `(tenant_id, id)` keys.
pub async fn sample_keys(
    su: &DatabaseConnection,
    table: &str,
    n: usize,
) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let mut out = vec![];
    for r in rows(
        su,
        &format!("SELECT tenant_id, id FROM {table} ORDER BY random() LIMIT {n}"),
        vec![],
    )
    .await?
    {
        out.push((r.try_get_by_index(0)?, r.try_get_by_index(1)?));
    }
    Ok(out)
}

/// Keeps the first `max` lines of a plan, plus a marker when cut.
pub fn snippet(mut lines: Vec<String>, max: usize) -> Vec<String> {
    if lines.len() > max {
        let cut = lines.len() - max;
        lines.truncate(max);
        lines.push(format!("  ... ({cut} more lines)"));
    }
    lines
}

/// Drops a scratch database (closing its sessions), so its autovacuum cannot disturb later
/// measurements. Failures are ignored: the ephemeral cluster goes away at exit anyway.
pub async fn drop_db(db: &TestDb) {
    let url = db
        .superuser_url()
        .replace(&format!("/{}", db.name), "/postgres");
    if let Ok(su) = connect(&url, 1).await {
        let _ = exec_text(
            &su,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name),
        )
        .await;
        let _ = su.close().await;
    }
}

/// [`drop_db`], then the tenant roles made in it (cluster-wide, so they outlive the database),
/// 200 per statement. Failures are ignored, as there.
pub async fn drop_db_and_roles(db: &TestDb, roles: &[String]) {
    drop_db(db).await;
    let url = db
        .superuser_url()
        .replace(&format!("/{}", db.name), "/postgres");
    if let Ok(su) = connect(&url, 1).await {
        for chunk in roles.chunks(200) {
            let _ = exec_text(&su, &format!("DROP ROLE IF EXISTS {}", chunk.join(", "))).await;
        }
        let _ = su.close().await;
    }
}
