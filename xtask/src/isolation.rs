//! `cargo xtask test-isolation`: start an ephemeral PostgreSQL, migrate (or, with
//! `--from-database URL`, clone an existing database into it), attack every tenant table as the
//! app login (directly and through PgBouncer) and as the legacy login, print the matrix.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use tenantry_tests::isolation::pool::PgBouncer;
use tenantry_tests::isolation::{self, IsolationTarget};
use tenantry_tests::logins::{APP_LOGIN, LoginRole};

/// Options of the command.
#[derive(Debug, clap::Args)]
pub struct IsolationArgs {
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Transactions in each pool-reuse check.
    #[arg(long, default_value_t = 300)]
    pool_iterations: usize,
    /// Skip the PgBouncer leg even when pgbouncer is installed.
    #[arg(long)]
    no_pgbouncer: bool,
    /// Attack a clone of this database instead of a freshly migrated one (the database itself
    /// is only read, by `pg_dump`): the URL of a login that may dump all of it (a superuser or
    /// a BYPASSRLS role, since row level security is forced).
    #[arg(long, value_name = "URL")]
    from_database: Option<String>,
}

pub async fn run(args: IsolationArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (db, legacy) = match &args.from_database {
        Some(url) => {
            let clone = isolation::clone::clone_database(url)
                .await
                .with_context(|| {
                    format!(
                        "cloning {} into an ephemeral PostgreSQL",
                        isolation::clone::redacted(url)
                    )
                })?;
            println!(
                "attacking {}, a clone of {} (the source is not changed)",
                clone.db.name,
                isolation::clone::redacted(url)
            );
            (clone.db, clone.has_legacy_role)
        }
        None => (
            tenantry_tests::migrated_db()
                .await
                .context("starting and migrating an ephemeral PostgreSQL")?,
            true,
        ),
    };
    let cluster = tenantry_tests::shared_cluster()?;
    let bouncer = if !args.no_pgbouncer && PgBouncer::available() {
        Some(PgBouncer::start(cluster, APP_LOGIN, 2).map_err(|e| anyhow::anyhow!(e))?)
    } else {
        if !args.no_pgbouncer {
            eprintln!(
                "pgbouncer is not installed (apt-get install -y pgbouncer): the PgBouncer leg is skipped"
            );
        }
        None
    };
    let target = IsolationTarget {
        bouncer_url: bouncer.as_ref().map(|b| b.url(APP_LOGIN, &db.name)),
        legacy_url: legacy.then(|| db.url(LoginRole::Legacy)),
        ..IsolationTarget::for_db(&db, args.pool_iterations)
    };
    let report = isolation::run(&target).await?;
    drop(bouncer);
    println!("{report}");
    println!("wall time: {:.1}s", started.elapsed().as_secs_f64());
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report.to_json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.passed() {
        anyhow::bail!("test-isolation: {} failure(s)", report.failures().len());
    }
    Ok(())
}
