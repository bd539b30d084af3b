//! Migrating every dedicated tenant's schema: `up` applies the pending tenant-schema
//! migrations, each schema in ONE transaction (never half-applied), many schemas in parallel
//! over a bounded pool, with a progress bar; a failing schema is reported with its error and
//! the others go on; versions are recorded centrally, so an interrupted run resumes where it
//! stopped and `status` is one catalog query however many schemas there are.

use std::collections::BTreeMap;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use tokio::sync::Semaphore;

use super::{TenantSchema, TenantSchemaMigration, template};
use crate::dsl::{Grant, GrantObject, Privilege};
use crate::m0010_dedicated_tenants::{VERSIONS_TABLE, template_rows};
use crate::plan::pg;
use crate::tables::t;

/// One schema that failed, and why (its transaction rolled back: it is exactly as it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFailure {
    /// The schema.
    pub schema: String,
    /// The migration that failed.
    pub migration: String,
    /// PostgreSQL's error.
    pub error: String,
}

/// What `up` did to the tenant schemas.
#[derive(Debug, Clone, Default)]
pub struct SchemasReport {
    /// Schemas that got at least one migration.
    pub migrated: usize,
    /// Schemas that were already current.
    pub current: usize,
    /// Schemas that failed (the others went on).
    pub failed: Vec<SchemaFailure>,
}

/// Per schema, the migrations it has: ONE query over the central record, joined with the
/// catalog so a recorded schema that no longer exists is left out.
pub async fn applied<C: ConnectionTrait>(
    db: &C,
) -> Result<BTreeMap<TenantSchema, Vec<String>>, DbErr> {
    if !migrated(db).await? {
        return Ok(BTreeMap::new());
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT v.schema_name, array_agg(v.migration ORDER BY v.migration) \
             FROM tenancy.tenant_schema_versions v \
             JOIN pg_catalog.pg_namespace n ON n.nspname = v.schema_name \
             GROUP BY v.schema_name",
        ))
        .await?;
    let mut out = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get_by_index(0)?;
        let migrations: Vec<String> = row.try_get_by_index(1)?;
        if let Ok(schema) = TenantSchema::parse(&name) {
            out.insert(schema, migrations);
        }
    }
    Ok(out)
}

/// Whether `m0010_dedicated_tenants` is applied (before it there are no tenant schemas).
pub async fn migrated<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    Ok(db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('tenancy.tenant_schema_versions') IS NOT NULL",
        ))
        .await?
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// `N at <latest>; M at <older>: t_..., t_...` (schemas listed for all but the largest group).
pub fn summary(applied: &BTreeMap<TenantSchema, Vec<String>>) -> String {
    if applied.is_empty() {
        return "no dedicated tenant schemas".into();
    }
    let mut groups: BTreeMap<String, Vec<&TenantSchema>> = BTreeMap::new();
    for (schema, migrations) in applied {
        let latest = migrations.last().cloned().unwrap_or_else(|| "none".into());
        groups.entry(latest).or_default().push(schema);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(b.0.cmp(&a.0)));
    groups
        .iter()
        .enumerate()
        .map(|(i, (at, schemas))| {
            if i == 0 {
                format!("{} at {at}", schemas.len())
            } else {
                let names: Vec<_> = schemas.iter().take(10).map(|s| s.as_str()).collect();
                let more = if schemas.len() > 10 { ", ..." } else { "" };
                format!("{} at {at}: {}{more}", schemas.len(), names.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `up` would run where: `(migration, schemas)` for each pending migration.
pub fn pending(
    migrations: &[TenantSchemaMigration],
    applied: &BTreeMap<TenantSchema, Vec<String>>,
) -> Vec<(&'static str, Vec<TenantSchema>)> {
    migrations
        .iter()
        .map(|m| {
            let todo = applied
                .iter()
                .filter(|(_, have)| !have.iter().any(|h| h == m.name))
                .map(|(s, _)| s.clone())
                .collect();
            (m.name, todo)
        })
        .filter(|(_, todo): &(_, Vec<_>)| !todo.is_empty())
        .collect()
}

/// Stores the templates of migrations not stored yet, so schemas provisioned from now on get
/// them too (in the runner's connection, before the schemas are migrated). Each migration's
/// template in one transaction: a provisioning replaying the templates sees all of it or
/// none of it (and records only what it ran, m0018), never part of one.
pub async fn store_templates(
    db: &DatabaseConnection,
    migrations: &[TenantSchemaMigration],
) -> Result<(), DbErr> {
    for m in migrations {
        let txn = db.begin().await?;
        let stored = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT EXISTS (SELECT FROM tenancy.tenant_schema_steps WHERE migration = $1)",
                [m.name.into()],
            ))
            .await?
            .map(|r| r.try_get_by_index::<bool>(0))
            .transpose()?
            .unwrap_or(false);
        if stored {
            continue;
        }
        let rows = template_rows(m).map_err(|e| DbErr::Custom(e.to_string()))?;
        for insert in &rows {
            txn.execute(insert).await?;
        }
        txn.commit().await?;
    }
    Ok(())
}

/// Applies `migration` to `schema` in one transaction: the statements, the tenant pin on new
/// tables, and the version row; on any error it rolls back and the schema is as it was.
async fn migrate_one(
    db: &DatabaseConnection,
    schema: &TenantSchema,
    migration: &TenantSchemaMigration,
) -> Result<(), DbErr> {
    let statements = template(migration).map_err(|e| DbErr::Custom(e.to_string()))?;
    let txn = db.begin().await?;
    // New tables' `tenant_id` default reads the context: the schema's own tenant.
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_catalog.set_config('tenantry.tenant_id', $1, true)",
        [schema.tenant_id().to_string().into()],
    ))
    .await?;
    for sql in &statements {
        txn.execute_unprepared(&schema.render(sql)).await?;
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT tenancy.pin_dedicated_tables($1)",
        [schema.tenant_id().into()],
    ))
    .await?;
    let record = Query::insert()
        .into_table(t(VERSIONS_TABLE.0, Alias::new(VERSIONS_TABLE.1)))
        .columns([Alias::new("schema_name"), Alias::new("migration")])
        .values_panic([Expr::val(schema.as_str()), Expr::val(migration.name)])
        .to_owned();
    txn.execute_raw(pg(&record)).await?;
    // A grant the tenant role already holds, granted again: it rewrites the schema's
    // `pg_namespace` row, and PostgreSQL resets every session's cached plans on any namespace
    // change, so a statement a connection prepared before this migration (the pipelined
    // path's, or sqlx's) is planned again and resolves a table this migration added here
    // rather than the one of that name in `public` it found before.
    let reset_plans = Grant::privileges([Privilege::Usage])
        .on(GrantObject::schema(Alias::new(schema.as_str())))
        .to(Alias::new(schema.as_str()))
        .to_owned();
    txn.execute_raw(pg(&reset_plans)).await?;
    txn.commit().await
}

/// Applies every pending tenant-schema migration to every dedicated schema, at most
/// `concurrency` schemas at once (the pool of `db` should hold that many connections).
pub async fn up(
    db: &DatabaseConnection,
    migrations: &[TenantSchemaMigration],
    concurrency: usize,
) -> Result<SchemasReport, DbErr> {
    if !migrated(db).await? {
        return Ok(SchemasReport::default());
    }
    store_templates(db, migrations).await?;
    let applied = applied(db).await?;
    let mut report = SchemasReport::default();
    let mut work = Vec::new();
    for (schema, have) in applied {
        let todo: Vec<TenantSchemaMigration> = migrations
            .iter()
            .filter(|m| !have.iter().any(|h| h == m.name))
            .copied()
            .collect();
        if todo.is_empty() {
            report.current += 1;
        } else {
            work.push((schema, todo));
        }
    }
    if work.is_empty() {
        return Ok(report);
    }
    let bar = ProgressBar::new(work.len() as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "  tenant schemas [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (schema, todo) in work {
        let (db, gate, bar) = (db.clone(), gate.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let mut outcome = Ok(());
            for m in &todo {
                if let Err(e) = migrate_one(&db, &schema, m).await {
                    outcome = Err(SchemaFailure {
                        schema: schema.to_string(),
                        migration: m.name.into(),
                        error: e.to_string(),
                    });
                    break;
                }
            }
            bar.inc(1);
            outcome
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => report.migrated += 1,
            Ok(Err(failure)) => {
                tracing::error!(schema = %failure.schema, migration = %failure.migration,
                    error = %failure.error, "tenant schema migration failed");
                report.failed.push(failure);
            }
            Err(e) => return Err(DbErr::Custom(format!("a schema migration task died: {e}"))),
        }
    }
    bar.finish_and_clear();
    report.failed.sort_by(|a, b| a.schema.cmp(&b.schema));
    Ok(report)
}
