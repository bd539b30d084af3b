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

/// Runs `iterations` transactions over a pool of `pool_size` connections on `url`.
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
    let pool = match PgPoolOptions::new()
        .max_connections(pool_size)
        .connect(url)
        .await
    {
        Ok(p) => p,
        Err(e) => return Cell::fail(format!("cannot connect: {e}")),
    };
    // A fixed-seed generator: the sequence of tenants is random-looking but reproducible.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut seen_pids = std::collections::BTreeSet::new();
    for i in 0..iterations {
        let choice = next() % 3;
        let tenant = match choice {
            0 => Some(tenants[0]),
            1 => Some(tenants[1]),
            _ => None,
        };
        let Some(table) = tables.get((next() as usize) % tables.len().max(1)) else {
            return Cell::NotApplicable;
        };
        let mut sql = String::from("BEGIN;");
        if let Some(t) = tenant {
            sql.push_str(&mode.set_sql(t));
            sql.push(';');
        }
        sql.push_str(&format!(
            "SELECT pg_backend_pid()::text AS v UNION ALL SELECT DISTINCT tenant_id::text FROM {}; COMMIT;",
            table.sql_name
        ));
        let rows = match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&pool)
            .await
        {
            Ok(rows) => rows,
            Err(e) => return Cell::fail(format!("transaction {i} failed: {e}")),
        };
        use sqlx::Row as _;
        let values: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        if let Some(pid) = values.first() {
            seen_pids.insert(pid.clone());
        }
        let visible: Vec<&String> = values.iter().skip(1).collect();
        let wrong = match tenant {
            Some(t) => visible.iter().any(|v| **v != t.to_string()),
            None => !visible.is_empty(),
        };
        if wrong {
            pool.close().await;
            return Cell::fail(format!(
                "transaction {i} ({}) on {} saw tenants {:?}",
                tenant.map_or("no context".to_owned(), |t| format!("tenant {t}")),
                table.name,
                visible
            ));
        }
    }
    pool.close().await;
    Cell::pass(format!(
        "{iterations} transactions over {} server connection(s)",
        seen_pids.len()
    ))
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
        let dir = cluster.dir().join("pgbouncer");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        user.take_ownership(&dir).map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| e.to_string())?;
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
