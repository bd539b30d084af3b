//! `cargo run -p migration -- init|generate|up|down|status|fresh|refresh|reset|plan|verify`.

use anyhow::{Context, bail};
use clap::Parser;
use migration::cli::{AdoptArgs, Cli, CliCommand};
use migration::core_set::{self, Installed};
use migration::run::{self, Command};
use migration::{generate, guards, planned};
use migration_kit::adoption::{self, Adoption, Phase, record};
use sea_orm::ConnectionTrait;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn,sea_orm_migration=info".into()),
        )
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Some(CliCommand::Generate {
            migration_name,
            migration_dir,
        }) => {
            let done = generate::generate(migration_dir, migration_name)?;
            println!(
                "created {} and registered {} in src/lib.rs",
                done.file.display(),
                done.module
            );
            return Ok(());
        }
        Some(CliCommand::Init { migration_dir }) => bail!(
            "init: {} is already a migration crate (Tenantry keeps its migrations in one crate); add a migration with `generate NAME`",
            migration_dir.display()
        ),
        _ => {}
    }
    let url = cli
        .database_url
        .context("DATABASE_URL is not set: pass -u URL, export it, or run `cargo xtask db start`, which writes it to .env")?;
    let db = run::connect(&url)
        .await
        .context("cannot connect to the database")?;
    let command = cli.command.unwrap_or(CliCommand::Up { num: None });
    let tenant_schemas = matches!(command, CliCommand::Up { num: None } | CliCommand::Status);
    let command = match command {
        CliCommand::Up { num } => Command::Up(num),
        CliCommand::Down { num, force } => {
            guards::FORCE_DOWN.store(force, std::sync::atomic::Ordering::SeqCst);
            return down(&db, num.unwrap_or(1)).await;
        }
        CliCommand::Status => {
            run::run(&db, Command::Status)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if core_set::detect(&db).await? == Installed::Set(core_set::Set::Core) {
                println!(
                    "Tenancy core only (an adopted database): {} are not part of it",
                    core_set::full_only_names().join(", ")
                );
            }
            for rec in record::list(&db).await? {
                println!(
                    "Adoption {} ({}): {}",
                    rec.name,
                    if rec.phase == "all" {
                        "applied".to_owned()
                    } else {
                        format!("phase {}", rec.phase)
                    },
                    rec.tables.join(", ")
                );
            }
            return schemas(&url, true).await;
        }
        CliCommand::Fresh => Command::Fresh,
        CliCommand::Refresh => Command::Refresh,
        CliCommand::Reset => Command::Reset,
        CliCommand::Plan { down, num } => return plan(&db, down, num).await,
        CliCommand::Verify { app_role } => return verify(&db, &app_role).await,
        CliCommand::Adopt(args) => return adopt(&db, &args).await,
        CliCommand::Generate { .. } | CliCommand::Init { .. } => return Ok(()),
    };
    let status = matches!(command, Command::Status);
    run::run(&db, command)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if tenant_schemas {
        schemas(&url, status).await?;
    }
    Ok(())
}

/// `TENANTRY_SCHEMA_CONCURRENCY`: schemas migrated at once (default 4).
fn schema_concurrency() -> usize {
    std::env::var("TENANTRY_SCHEMA_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4)
}

/// After `up`: every dedicated tenant's schema; after `status`: their versions at a glance.
async fn schemas(url: &str, status_only: bool) -> anyhow::Result<()> {
    use migration::dedicated::{migrate, tenant_schema_migrations};
    let concurrency = schema_concurrency();
    let mut opts = sea_orm::ConnectOptions::new(url);
    opts.max_connections(concurrency as u32).sqlx_logging(false);
    let pool = sea_orm::Database::connect(opts)
        .await
        .context("cannot connect to the database")?;
    if status_only {
        let applied = migrate::applied(&pool).await?;
        println!("tenant schemas: {}", migrate::summary(&applied));
        return Ok(());
    }
    let report = migrate::up(&pool, &tenant_schema_migrations(), concurrency).await?;
    println!(
        "tenant schemas: {} migrated, {} already current, {} failed",
        report.migrated,
        report.current,
        report.failed.len()
    );
    for f in &report.failed {
        eprintln!("  {} at {}: {}", f.schema, f.migration, f.error);
    }
    if !report.failed.is_empty() {
        bail!(
            "{} tenant schema(s) failed; they are unchanged, rerun `up` to retry",
            report.failed.len()
        );
    }
    Ok(())
}

async fn plan(
    db: &sea_orm::DatabaseConnection,
    down: bool,
    num: Option<u32>,
) -> anyhow::Result<()> {
    let pending = run::pending(db).await?;
    let all = match core_set::detect(db).await? {
        Installed::Set(core_set::Set::Core) => core_set::core(),
        _ => planned(),
    };
    let selected: Vec<_> = if down {
        let applied: Vec<_> = all
            .iter()
            .filter(|m| !pending.iter().any(|p| p == m.name()))
            .collect();
        applied
            .into_iter()
            .rev()
            .take(num.unwrap_or(1) as usize)
            .collect()
    } else {
        let todo: Vec<_> = all
            .iter()
            .filter(|m| pending.iter().any(|p| p == m.name()))
            .collect();
        todo.into_iter()
            .take(num.map_or(usize::MAX, |n| n as usize))
            .collect()
    };
    if selected.is_empty() {
        println!("-- nothing to {}", if down { "roll back" } else { "apply" });
    }
    if !down && num.is_none() && pending.is_empty() {
        let applied = migration::dedicated::migrate::applied(db).await?;
        let all = migration::dedicated::tenant_schema_migrations();
        for (name, schemas) in migration::dedicated::migrate::pending(&all, &applied) {
            let names: Vec<_> = schemas.iter().map(|s| s.as_str()).collect();
            println!(
                "-- tenant-schema migration {name} would run in {}: {}",
                names.len(),
                names.join(", ")
            );
        }
    }
    for m in selected {
        for line in m.render(down) {
            println!("{line}");
        }
    }
    Ok(())
}

async fn verify(db: &sea_orm::DatabaseConnection, app_role: &str) -> anyhow::Result<()> {
    db.execute_unprepared("SET default_transaction_read_only = on")
        .await?;
    let report = migration::dedicated::audit::audit_all(db, app_role).await?;
    println!("{report}");
    if !report.passed() {
        bail!("verify: {} invariant(s) failed", report.failures().count());
    }
    Ok(())
}

/// `down -n N`: recorded adoptions are undone first (latest first), then migrations.
async fn down(db: &sea_orm::DatabaseConnection, n: u32) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let undone = run::with_lock(db, record::undo_latest(db))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match undone {
            Some(name) => {
                println!("Rolled back adoption {name}");
                left -= 1;
            }
            None => break,
        }
    }
    if left > 0 {
        run::run(db, Command::Down(Some(left)))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

fn declaration(args: &AdoptArgs) -> anyhow::Result<Adoption> {
    let mut adoption = Adoption::new(&args.schema);
    if !args.only.is_empty() {
        let only: Vec<&str> = args.only.iter().map(String::as_str).collect();
        adoption = adoption.only(&only);
    } else {
        let global: Vec<&str> = args.global.iter().map(String::as_str).collect();
        adoption = adoption.global(&global);
    }
    if let Some(root) = &args.tenant_root {
        adoption = adoption.tenant_root(root, &args.tenant_name);
    }
    for path in &args.tenant_path {
        let Some((table, column)) = path.split_once('.') else {
            bail!("--tenant-path {path:?}: expected TABLE.COLUMN");
        };
        adoption = adoption.tenant_path(table, column);
    }
    if args.orphans_to_default {
        adoption = adoption.orphans_to_default();
    }
    Ok(adoption)
}

/// The migration source `--write-migration` writes.
fn migration_source(name: &str, adoption: &Adoption) -> String {
    format!(
        "//! Adoption of schema `{schema}`, written by `migration adopt --schema {schema} ... --write-migration`.\n\
         //! Add `Box::new({name}::migration())` to your migrator's list; the plan is built from the\n\
         //! live catalog when it runs and refused (changing nothing) on any blocker.\n\n\
         use migration_kit::adoption::{{Adoption, AdoptionMigration}};\n\n\
         /// The adoption, reviewed and committed as code.\n\
         pub fn adoption() -> Adoption {{\n    {decl}\n}}\n\n\
         /// The migration that applies it.\n\
         pub fn migration() -> AdoptionMigration {{\n    AdoptionMigration::new({name:?}, adoption())\n}}\n",
        schema = adoption.schema,
        decl = adoption.to_rust(),
    )
}

async fn adopt(db: &sea_orm::DatabaseConnection, args: &AdoptArgs) -> anyhow::Result<()> {
    let adoption = declaration(args)?;
    let phase = match args.phase.as_str() {
        "1" => Phase::Columns,
        "2" => Phase::Enforce,
        "all" => Phase::All,
        other => bail!("--phase {other:?}: expected 1, 2 or all"),
    };
    if let Some(path) = &args.write_migration {
        let path = if path.ends_with(".rs") {
            std::path::PathBuf::from(path)
        } else {
            std::path::PathBuf::from(format!("{path}.rs"))
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("adoption")
            .to_owned();
        std::fs::write(&path, migration_source(&name, &adoption))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
        return Ok(());
    }
    // The core migrations to install first: all of them on a database with none of Tenantry's
    // objects, the rest of them on a core-only one whose install was interrupted.
    let core_pending: Vec<String> = match core_set::detect(db).await? {
        Installed::Nothing => core_set::core()
            .iter()
            .map(|m| m.name().to_owned())
            .collect(),
        Installed::Set(core_set::Set::Core) => run::pending(db).await?,
        Installed::Set(core_set::Set::Full) => Vec::new(),
    };
    let bare = !core_pending.is_empty();
    if args.plan {
        db.execute_unprepared("SET default_transaction_read_only = on")
            .await?;
        let plan = if bare {
            println!(
                "-- This database lacks Tenantry's tenancy core: `adopt` installs it first \
                 (schema tenancy; never our demo tables), then adopts."
            );
            for m in core_set::core()
                .iter()
                .filter(|m| core_pending.iter().any(|p| p == m.name()))
            {
                for line in m.render(false) {
                    println!("{line}");
                }
            }
            adoption::plan_before_core(db, &adoption).await?
        } else {
            adoption::plan(db, &adoption).await?
        };
        for line in plan.render(phase) {
            println!("{line}");
        }
        if !plan.blockers.is_empty() {
            bail!(
                "adopt: refused, {} blocker(s); nothing changed",
                plan.blockers.len()
            );
        }
        return Ok(());
    }
    if bare {
        // Refuse before anything changes: plan first, install the core only if it would go on.
        let plan = adoption::plan_before_core(db, &adoption).await?;
        if !plan.blockers.is_empty() {
            bail!(
                "adopt: {}",
                adoption::AdoptionError::Blocked(plan.blockers.clone())
            );
        }
        run::install_core(db)
            .await
            .map_err(|e| anyhow::anyhow!("adopt: installing the tenancy core: {e}"))?;
        println!(
            "installed the tenancy core (schema {}; {} migration(s), none of the demo baseline)",
            migration::names::TENANCY_SCHEMA,
            core_pending.len()
        );
    }
    let work = async {
        let plan = adoption::plan(db, &adoption)
            .await
            .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        if !plan.blockers.is_empty() {
            return Err(sea_orm::DbErr::Custom(
                adoption::AdoptionError::Blocked(plan.blockers.clone()).to_string(),
            ));
        }
        record::apply(&sea_orm_migration::SchemaManager::new(db), &plan, phase)
            .await
            .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        Ok(plan.tables.len())
    };
    let n = run::with_lock(db, work).await.map_err(|e| {
        anyhow::anyhow!(
            "adopt: {}",
            e.to_string().trim_start_matches("Custom Error: ")
        )
    })?;
    println!(
        "adopted {n} table(s) of schema {} ({})",
        adoption.schema, args.phase
    );
    Ok(())
}
