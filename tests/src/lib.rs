//! Tenantry's test harness: an ephemeral PostgreSQL that needs no setup, the dev logins, and
//! migrated databases cloned from a template, shared by the integration tests and `xtask`.
//!
//! One cluster per process ([`shared_cluster`]), one migrated template database built once
//! ([`migrated_db`]), and `CREATE DATABASE ... TEMPLATE` for every test that needs a fresh one.
#![warn(missing_docs)]

pub mod binaries;
pub mod cluster;
pub mod databases;
pub mod isolation;
pub mod logins;
pub mod os_user;
pub mod proxy;

pub use cluster::{Cluster, Lifetime};
pub use databases::{TestDb, empty_db, migrated_db, shared_cluster};

use std::path::PathBuf;

/// What can go wrong while starting or preparing PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The server binaries are not on this machine.
    #[error(
        "PostgreSQL 15 server binaries not found (looked at $TENANTRY_PG_BINDIR, `pg_config --bindir` \
         and /usr/lib/postgresql/15/bin). Install them with: apt-get install -y postgresql-15"
    )]
    MissingBinaries,
    /// We are root but there is no `postgres` system user to run the server as.
    #[error(
        "running as root, but there is no `postgres` system user to run the server as \
         (initdb refuses root); install Debian's postgresql-15 package, which creates it"
    )]
    NoPostgresUser,
    /// A server did not start.
    #[error("PostgreSQL did not start on port {port}: {detail} (log: {})", log.display())]
    Start {
        /// The port it was given.
        port: u16,
        /// Its log file.
        log: PathBuf,
        /// What pg_ctl said.
        detail: String,
    },
    /// A helper command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its output.
        detail: String,
    },
    /// A file-system operation failed.
    #[error("{0}")]
    Io(String),
    /// A database statement failed while preparing logins or databases.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}
