//! A PostgreSQL cluster started from the machine's binaries: ephemeral for tests, or
//! persistent under `target/` for development.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::HarnessError;
use crate::binaries::PgBinaries;
use crate::os_user::ServerUser;

/// The bootstrap superuser every cluster is initialised with. Only the harness uses it, to
/// create logins and databases; application code never connects as it.
pub const BOOTSTRAP_SUPERUSER: &str = "postgres";

/// Extra `postgresql.conf` settings for clusters the harness starts, `;`-separated (for
/// diagnostics, e.g. `TENANTRY_PG_CONF="shared_preload_libraries = 'pg_stat_statements'"`).
pub const EXTRA_CONF_ENV: &str = "TENANTRY_PG_CONF";

/// How a cluster is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Stopped and deleted when the [`Cluster`] is dropped (or by the next run if killed).
    Ephemeral,
    /// Kept on disk; stopped only on request (`cargo xtask db stop`).
    Persistent,
}

/// A running (or stoppable) PostgreSQL cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bins: PgBinaries,
    user: ServerUser,
    lifetime: Lifetime,
    stopped: AtomicBool,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Where ephemeral clusters live: one directory per cluster, named `<pid>-<seq>`, so a run can
/// tell which ones belong to processes that no longer exist.
fn ephemeral_root() -> PathBuf {
    std::env::temp_dir().join("tenantry-pg")
}

impl Cluster {
    /// Starts a throwaway cluster on a free port with `fsync=off`, after removing clusters left
    /// behind by killed runs.
    pub fn start_ephemeral() -> Result<Self, HarnessError> {
        let bins = PgBinaries::locate()?;
        let user = ServerUser::detect()?;
        let root = ephemeral_root();
        create_shared_dir(&root)?;
        remove_stale_clusters(&root, &bins, &user);
        let name = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = root.join(name);
        let cluster = Self::init(dir, bins, user, Lifetime::Ephemeral)?;
        cluster.start()?;
        Ok(cluster)
    }

    /// Opens the persistent cluster in `dir`, creating it on first use. It is not started.
    pub fn open_persistent(dir: &Path) -> Result<Self, HarnessError> {
        let bins = PgBinaries::locate()?;
        let user = ServerUser::detect()?;
        if dir.join("data").join("PG_VERSION").is_file() {
            let port = read_port(dir)?;
            return Ok(Self {
                dir: dir.to_path_buf(),
                port,
                bins,
                user,
                lifetime: Lifetime::Persistent,
                stopped: AtomicBool::new(false),
            });
        }
        Self::init(dir.to_path_buf(), bins, user, Lifetime::Persistent)
    }

    fn init(
        dir: PathBuf,
        bins: PgBinaries,
        user: ServerUser,
        lifetime: Lifetime,
    ) -> Result<Self, HarnessError> {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        user.take_ownership(&dir)?;
        let data = dir.join("data");
        run(user
            .command(&bins.path("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                BOOTSTRAP_SUPERUSER,
                "-A",
                "trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ]))?;
        let port = free_port()?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .map_err(|e| io_err(&data, e))?;
        let durability = match lifetime {
            Lifetime::Ephemeral => {
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            }
            Lifetime::Persistent => "",
        };
        // Diagnostics only (e.g. `shared_preload_libraries = 'pg_stat_statements'` for the
        // bench's server-side counts): settings separated by `;`, one per line.
        let extra = std::env::var(EXTRA_CONF_ENV)
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .fold(String::new(), |acc, l| acc + l + "\n");
        write!(
            conf,
            "\n# tenantry harness\nport = {port}\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\nmax_connections = 300\n{durability}{extra}",
            dir.display()
        )
        .map_err(|e| io_err(&data, e))?;
        fs::write(dir.join("port"), port.to_string()).map_err(|e| io_err(&dir, e))?;
        Ok(Self {
            dir,
            port,
            bins,
            user,
            lifetime,
            stopped: AtomicBool::new(false),
        })
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`). The socket
    /// directory is given on the command line (`-k`, which wins over `postgresql.conf`), so a
    /// persistent cluster whose directory was moved (a moved `target/`) starts where it is now.
    pub fn start(&self) -> Result<(), HarnessError> {
        if self.is_running() {
            return Ok(());
        }
        run(self
            .user
            .command(&self.bins.path("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!("-k {}", shell_quoted(&self.dir)))
            .args(["-w", "-t", "60", "start"]))
        .map_err(|e| match e {
            HarnessError::Command { detail, .. } => HarnessError::Start {
                port: self.port,
                log: self.dir.join("server.log"),
                detail,
            },
            other => other,
        })?;
        self.stopped.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Stops the server immediately (`pg_ctl stop -m immediate` for ephemeral clusters, `fast`
    /// for persistent ones so their data stays consistent).
    pub fn stop(&self) -> Result<(), HarnessError> {
        if self.stopped.swap(true, Ordering::SeqCst) || !self.is_running() {
            return Ok(());
        }
        let mode = match self.lifetime {
            Lifetime::Ephemeral => "immediate",
            Lifetime::Persistent => "fast",
        };
        run(self
            .user
            .command(&self.bins.path("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", mode, "stop"]))
    }

    /// Whether a server is running on this cluster's data directory.
    pub fn is_running(&self) -> bool {
        self.user
            .command(&self.bins.path("pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .arg("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data, log, socket).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The binaries this cluster runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// A connection URL for `login` on database `db` (trust authentication on loopback).
    pub fn url(&self, login: &str, db: &str) -> String {
        format!("postgres://{login}@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server and, for an ephemeral cluster, deletes its directory.
    pub fn shutdown(&self) {
        let _ = self.stop();
        if self.lifetime == Lifetime::Ephemeral {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.lifetime == Lifetime::Ephemeral {
            self.shutdown();
        }
    }
}

/// Stops and deletes every cluster under `root` whose owning process is gone.
fn remove_stale_clusters(root: &Path, bins: &PgBinaries, user: &ServerUser) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = user
            .command(&bins.path("pg_ctl"))
            .arg("-D")
            .arg(entry.path().join("data"))
            .args(["-w", "-m", "immediate", "stop"])
            .output();
        let _ = fs::remove_dir_all(entry.path());
    }
}

/// Creates a directory every local user may create entries in (like `/tmp`), so both root
/// and the `postgres` user can use it.
fn create_shared_dir(root: &Path) -> Result<(), HarnessError> {
    use std::os::unix::fs::PermissionsExt;
    if !root.is_dir() {
        fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        fs::set_permissions(root, fs::Permissions::from_mode(0o1777))
            .map_err(|e| io_err(root, e))?;
    }
    Ok(())
}

fn read_port(dir: &Path) -> Result<u16, HarnessError> {
    let text = fs::read_to_string(dir.join("port")).map_err(|e| io_err(dir, e))?;
    text.trim()
        .parse()
        .map_err(|_| HarnessError::Io(format!("{}: unreadable port file", dir.display())))
}

/// `path` as one word for the shell `pg_ctl` starts the server through (`-o` options are
/// passed to it unparsed): in single quotes, each `'` written `'\''`.
fn shell_quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

/// Asks the kernel for a free port. Another process could take it before the server binds;
/// `pg_ctl start` then fails with a clear error rather than connecting somewhere else.
fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::Io(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| HarnessError::Io(format!("no free port: {e}")))
}

fn run(cmd: &mut Command) -> Result<(), HarnessError> {
    let out = cmd.output().map_err(|e| HarnessError::Command {
        command: format!("{cmd:?}"),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::Command {
        command: format!("{cmd:?}"),
        detail: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn io_err(path: &Path, e: std::io::Error) -> HarnessError {
    HarnessError::Io(format!("{}: {e}", path.display()))
}
