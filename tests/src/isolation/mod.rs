//! The attack matrix behind `cargo xtask test-isolation`.
//!
//! Everything is discovered from the live catalog (tables with a `tenant_id` column are tenant
//! tables), so a table a user adds with the tenancy DSL is attacked with no change here. Two
//! tenants are seeded as the superuser; every attack of `shared/reference/isolation-checklist.md`
//! then runs as the app login, tenant A against tenant B's rows, and as the legacy login (pinned
//! to the default tenant) with B's and A's ids set; the catalog audit shared with
//! `migration verify` adds what the catalog alone can prove.

pub mod attacks;
pub mod catalog;
pub mod clone;
pub mod legacy;
pub mod login;
pub mod outcome;
pub mod pool;
pub mod report;
pub mod schemas;
pub mod seed;

pub use outcome::ContextMode;
pub use report::{Cell, IsolationReport, Row};

use crate::HarnessError;
use crate::databases::{TestDb, connect};
use crate::logins::{APP_LOGIN, LoginRole};

/// Where and how to attack.
#[derive(Debug, Clone)]
pub struct IsolationTarget {
    /// The bootstrap superuser's URL (seeding).
    pub superuser_url: String,
    /// The owner's URL (catalog audit).
    pub owner_url: String,
    /// The app login's URL.
    pub app_url: String,
    /// The app login's name.
    pub app_login: String,
    /// The app group role.
    pub app_role: String,
    /// How the app sets its context (always `Local` but in the tests that prove the matrix can fail).
    pub mode: ContextMode,
    /// Transactions of the pool-reuse check.
    pub pool_iterations: usize,
    /// The same app URL through PgBouncer, when one runs.
    pub bouncer_url: Option<String>,
    /// The legacy login's URL (a member of `tenantry_legacy`); `None` skips the legacy rows.
    pub legacy_url: Option<String>,
}

impl IsolationTarget {
    /// The harness's logins on `db`: the app login with `SET LOCAL` contexts, the legacy login,
    /// no PgBouncer (set `bouncer_url` for that leg), `pool_iterations` transactions per pool check.
    pub fn for_db(db: &TestDb, pool_iterations: usize) -> Self {
        Self {
            superuser_url: db.superuser_url(),
            owner_url: db.url(LoginRole::Owner),
            app_url: db.url(LoginRole::App),
            app_login: APP_LOGIN.into(),
            app_role: migration::names::APP_ROLE.into(),
            mode: ContextMode::Local,
            pool_iterations,
            bouncer_url: None,
            legacy_url: Some(db.url(LoginRole::Legacy)),
        }
    }
}

/// Seeds, attacks every table, checks the catalog and pool reuse, and reports.
pub async fn run(target: &IsolationTarget) -> Result<IsolationReport, HarnessError> {
    let seeding = connect(&target.superuser_url, 1).await?;
    let tables = catalog::discover(&seeding).await?;
    let seeded = seed::seed(&seeding, &tables).await?;
    seeding.close().await.map_err(HarnessError::from)?;
    let registry = seed::registry(&tables);
    let app = connect(&target.app_url, 1).await?;
    let t = attacks::Target {
        app: &app,
        app_url: &target.app_url,
        mode: target.mode,
        seeded: &seeded,
        registry: registry.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        tables: &tables,
        no_context: None,
    };
    let mut report = IsolationReport {
        seed_failures: seeded.failures.clone(),
        ..Default::default()
    };
    for table in tables.iter().filter(|t| t.tenant_scoped) {
        report.matrix.push(Row {
            subject: table.name.clone(),
            cells: attacks::attack_table(&t, table).await?,
        });
    }
    report
        .other
        .push(login::set_role(&app, &target.app_login, &target.app_role).await?);
    if let Some(url) = &target.legacy_url {
        let legacy = connect(url, 1).await?;
        for table in tables.iter().filter(|t| t.tenant_scoped) {
            report.legacy.push(Row {
                subject: table.name.clone(),
                cells: legacy::attack_table(&legacy, &seeded, &tables, t.registry, table).await?,
            });
        }
        report.other.push(
            login::set_role(
                &legacy,
                crate::logins::LEGACY_LOGIN,
                migration::names::LEGACY_ROLE,
            )
            .await?,
        );
        legacy.close().await.map_err(HarnessError::from)?;
    }
    let owner = connect(&target.owner_url, 1).await?;
    report
        .other
        .extend(login::global_tables(&owner, &app, &tables, &seeded, &target.app_role).await?);
    // Last of the attacks: definer calls are committed so their effects can be diffed.
    let superuser = connect(&target.superuser_url, 1).await?;
    report
        .other
        .extend(login::definer_functions(&app, &superuser, &tables, &seeded).await?);
    // Dedicated tenants: every way across schemas (after the shared attacks, whose
    // discovery leaves tenant schemas out: their tables hold one tenant's rows only).
    let dedicated = schemas::discover(&superuser).await?;
    report
        .other
        .extend(schemas::attack(&app, &dedicated, seeded.tenant_b).await?);
    report
        .other
        .extend(schemas::shared_cells(&app, &target.app_url, &superuser, &dedicated).await?);
    report
        .other
        .push(schemas::pg_temp_type(&target.app_url, &dedicated).await?);
    superuser.close().await.map_err(HarnessError::from)?;
    app.close().await.map_err(HarnessError::from)?;
    report.catalog = migration::dedicated::audit::audit_all(&owner, &target.app_role)
        .await
        .map_err(HarnessError::from)?
        .findings;
    owner.close().await.map_err(HarnessError::from)?;

    let tenant_tables: Vec<&catalog::Table> = tables.iter().filter(|t| t.tenant_scoped).collect();
    let tenants = [seeded.tenant_a, seeded.tenant_b];
    let mut pool_cells = vec![(
        "pool_reuse_direct",
        pool::pool_reuse(
            &target.app_url,
            &tenant_tables,
            tenants,
            target.mode,
            target.pool_iterations,
            2,
        )
        .await,
    )];
    if let Some(url) = &target.bouncer_url {
        pool_cells.push((
            "pool_reuse_pgbouncer",
            pool::pool_reuse(
                url,
                &tenant_tables,
                tenants,
                target.mode,
                target.pool_iterations,
                4,
            )
            .await,
        ));
    } else {
        pool_cells.push(("pool_reuse_pgbouncer", Cell::NotApplicable));
    }
    report.other.push(Row {
        subject: "pool (1-2 server connections)".into(),
        cells: pool_cells,
    });
    Ok(report)
}
