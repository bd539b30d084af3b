//! Pool reuse: many transactions over one or two pooled connections with random tenants, each
//! checking it sees only its own tenant's rows (or none without a context), directly and
//! through PgBouncer in transaction pooling mode.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use super::catalog::Table;
use super::outcome::ContextMode;
use super::report::Cell;
use crate::cluster::Cluster;

/// Concurrent workers sharing the pool in [`pool_reuse`].
pub const WORKERS: usize = 4;

/// Runs `iterations` transactions over a pool of `pool_size` connections on `url`, from
/// [`WORKERS`] concurrent tasks, each transaction with a random tenant (or none) checking that it
/// sees only that tenant's rows.
///
/// Only the simple query protocol is used, so it also works through PgBouncer in transaction
/// mode (which cannot keep prepared statements in version 1.18).
pub async fn pool_reuse(
    url: &str,
    tables: &[&Table],
    tenants: [Uuid; 2],
    mode: ContextMode,
    iterations: usize,
    pool_size: u32,
) -> Cell {
    if tables.is_empty() {
        return Cell::NotApplicable;
    }
    let pool = match PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(url)
        .await
    {
        Ok(p) => p,
        Err(e) => return Cell::fail(format!("cannot connect: {e}")),
    };
    let targets: Vec<(String, String)> = tables
        .iter()
        .map(|t| (t.sql_name.clone(), t.name.clone()))
        .collect();
    let per_worker = iterations.div_ceil(WORKERS);
    let mut handles = Vec::new();
    for w in 0..WORKERS {
        let (pool, targets) = (pool.clone(), targets.clone());
        // Fixed seeds: the sequence of tenants is random-looking but reproducible.
        let seed = 0x9e37_79b9_7f4a_7c15_u64 ^ ((w as u64 + 1) << 32);
        handles.push(tokio::spawn(async move {
            worker(&pool, &targets, tenants, mode, per_worker, seed).await
        }));
    }
    let mut pids = std::collections::BTreeSet::new();
    let mut failure = None;
    for h in handles {
        match h.await {
            Ok(Ok(seen)) => pids.extend(seen),
            Ok(Err(why)) => failure = failure.or(Some(why)),
            Err(e) => failure = failure.or(Some(format!("worker panicked: {e}"))),
        }
    }
    pool.close().await;
    match failure {
        Some(why) => Cell::fail(why),
        None => Cell::pass(format!(
            "{} transactions from {WORKERS} concurrent tasks over {} server connection(s)",
            per_worker * WORKERS,
            pids.len()
        )),
    }
}

async fn worker(
    pool: &sqlx::PgPool,
    targets: &[(String, String)],
    tenants: [Uuid; 2],
    mode: ContextMode,
    iterations: usize,
    mut state: u64,
) -> Result<std::collections::BTreeSet<String>, String> {
    use sqlx::Row as _;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut pids = std::collections::BTreeSet::new();
    for i in 0..iterations {
        let tenant = match next() % 3 {
            0 => Some(tenants[0]),
            1 => Some(tenants[1]),
            _ => None,
        };
        let (sql_name, name) = &targets[(next() as usize) % targets.len()];
        let mut sql = String::from("BEGIN;");
        if let Some(t) = tenant {
            sql.push_str(&mode.set_sql(t));
            sql.push(';');
        }
        sql.push_str(&format!(
            "SELECT pg_backend_pid()::text AS v UNION ALL SELECT DISTINCT tenant_id::text FROM {sql_name}; COMMIT;"
        ));
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .map_err(|e| format!("transaction {i} failed: {e}"))?;
        let values: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        if let Some(pid) = values.first() {
            pids.insert(pid.clone());
        }
        let visible: Vec<&String> = values.iter().skip(1).collect();
        let wrong = match tenant {
            Some(t) => visible.iter().any(|v| **v != t.to_string()),
            None => !visible.is_empty(),
        };
        if wrong {
            return Err(format!(
                "transaction {i} ({}) on {name} saw tenants {visible:?}",
                tenant.map_or("no context".to_owned(), |t| format!("tenant {t}"))
            ));
        }
    }
    Ok(pids)
}

/// A PgBouncer in transaction pooling mode in front of a cluster; stopped on drop.
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    user: crate::os_user::ServerUser,
}

impl PgBouncer {
    /// Whether `pgbouncer` is installed.
    pub fn available() -> bool {
        Command::new("pgbouncer")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Starts one on a free port for `login`, with `pool_size` server connections.
    pub fn start(cluster: &Cluster, login: &str, pool_size: u32) -> Result<Self, String> {
        let user = crate::os_user::ServerUser::detect().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
        // A directory per instance: tests of one binary start bouncers at the same time, and
        // a shared pidfile would refuse the second.
        let dir = cluster.dir().join(format!("pgbouncer-{port}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        user.take_ownership(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("userlist.txt"), format!("\"{login}\" \"\"\n"))
            .map_err(|e| e.to_string())?;
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port={pg}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = trust\nauth_file = {d}/userlist.txt\npool_mode = transaction\n\
             default_pool_size = {pool_size}\nmax_client_conn = 200\nignore_startup_parameters = extra_float_digits,options\n\
             logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
            pg = cluster.port(),
            d = dir.display()
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).map_err(|e| e.to_string())?;
        for f in ["userlist.txt", "pgbouncer.ini"] {
            user.take_ownership(&dir.join(f))
                .map_err(|e| e.to_string())?;
        }
        let out = user
            .command(Path::new("pgbouncer"))
            .arg("-d")
            .arg(dir.join("pgbouncer.ini"))
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pgbouncer did not start: {}{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
            ));
        }
        // pgbouncer daemonizes before it binds its socket: wait (bounded) until it accepts.
        let ready = (0..100).any(|_| {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                false
            }
        });
        let bouncer = Self { dir, port, user };
        if ready {
            Ok(bouncer)
        } else {
            Err("pgbouncer did not accept connections within 2s".into())
        }
    }

    /// The URL of `db` through PgBouncer.
    pub fn url(&self, login: &str, db: &str) -> String {
        format!("postgres://{login}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = self
                .user
                .command(Path::new("kill"))
                .arg(pid.trim())
                .output();
        }
    }
}
