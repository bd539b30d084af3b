//! The `migration` command line: sea-orm-migration's subcommands (`init`, `generate`, `fresh`,
//! `refresh`, `reset`, `status`, `up`, `down`) plus `plan` and `verify`.

use clap::{Parser, Subcommand};

/// Tenantry's migrations. Every command that touches the database holds a PostgreSQL advisory
/// lock for its whole run.
#[derive(Debug, Parser)]
#[command(name = "migration", version)]
pub struct Cli {
    /// Database URL of the owner login (the login that owns the schema and runs migrations).
    #[arg(
        short = 'u',
        long = "database-url",
        env = "DATABASE_URL",
        global = true
    )]
    pub database_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Option<CliCommand>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// sea-orm-migration's `init`: refuses here, this crate is already the migration crate.
    Init {
        /// The migration crate's directory.
        #[arg(short = 'd', long = "migration-dir", default_value = "./migration")]
        migration_dir: std::path::PathBuf,
    },
    /// Write a new migration from a template (a tenant-scoped table made with `TenantTable`)
    /// and register it in `src/lib.rs`; numbered after the last one (`m0008_NAME.rs`).
    Generate {
        /// The new migration's name: lowercase snake_case, e.g. `create_invoices`.
        migration_name: String,
        /// The migration crate's directory.
        #[arg(short = 'd', long = "migration-dir", default_value = "./migration")]
        migration_dir: std::path::PathBuf,
    },
    /// Apply pending migrations.
    Up {
        /// Apply at most this many.
        #[arg(short = 'n', long = "num")]
        num: Option<u32>,
    },
    /// Roll back applied migrations (default: the last one).
    Down {
        /// Roll back this many.
        #[arg(short = 'n', long = "num")]
        num: Option<u32>,
        /// Roll back even when that drops the tenant assignment of rows of several tenants.
        #[arg(long)]
        force: bool,
    },
    /// Show which migrations are applied and which are pending.
    Status,
    /// Drop everything, then apply all migrations.
    Fresh,
    /// Roll back all migrations, then apply them all again.
    Refresh,
    /// Roll back all migrations.
    Reset,
    /// Print the SQL `up` would run (or `--down`: what `down -n N` would run); changes nothing.
    Plan {
        /// Show the rollback of the last N applied migrations instead.
        #[arg(long)]
        down: bool,
        /// How many migrations (default: all pending for up, 1 for down).
        #[arg(short = 'n', long = "num")]
        num: Option<u32>,
    },
    /// Make the tables of an existing schema tenant-scoped (planned from the live catalog).
    Adopt(AdoptArgs),
    /// Check the live database against the isolation invariants; exits non-zero on failure.
    Verify {
        /// The application's group role.
        #[arg(long, default_value = crate::names::APP_ROLE)]
        app_role: String,
    },
}

/// `adopt`: which tables of which schema, and how existing rows get their tenant.
#[derive(Debug, Clone, clap::Args)]
pub struct AdoptArgs {
    /// The schema whose tables are adopted.
    #[arg(long)]
    pub schema: String,
    /// Tables that stay global (every other table of the schema is adopted).
    #[arg(long, value_delimiter = ',', conflicts_with = "only")]
    pub global: Vec<String>,
    /// Adopt exactly these tables.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Every row of this table becomes a tenant; other tables inherit through foreign keys.
    #[arg(long)]
    pub tenant_root: Option<String>,
    /// The root's column each tenant is named from.
    #[arg(long, default_value = "name", requires = "tenant_root")]
    pub tenant_name: String,
    /// `TABLE.COLUMN`: the foreign key a table follows toward the root (repeatable).
    #[arg(long, requires = "tenant_root")]
    pub tenant_path: Vec<String>,
    /// Rows with no tenant under the root rule go to the default tenant instead of refusing.
    #[arg(long)]
    pub orphans_to_default: bool,
    /// Print the report and the exact SQL; change nothing.
    #[arg(long)]
    pub plan: bool,
    /// `1`: columns and backfill; `2`: keys, row level security, policies, grants; `all`.
    #[arg(long, default_value = "all")]
    pub phase: String,
    /// Write the declaration as a migration source file at this path instead of applying it.
    #[arg(long, value_name = "PATH")]
    pub write_migration: Option<String>,
}
