//! Applying an adoption, recording it (so `status` lists it and `down` undoes it), and undoing.

use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, OnConflict, Order, Query, Table};
use sea_orm::{ConnectionTrait, DbErr, Statement, TransactionSession, TransactionTrait};
use sea_orm_migration::SchemaManager;

use super::planner::AdoptionPlan;
use super::{AdoptionError, Phase};
use crate::guards::Guard;
use crate::names::TENANCY_SCHEMA;
use crate::plan::pg;
use crate::probes;
use crate::tables::t;

const TABLE: &str = "adoptions";
const SEPARATOR: &str = "\n-- tenantry: next statement\n";

/// One recorded adoption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `adopt_<schema>`.
    pub name: String,
    /// The declaration, as Rust source.
    pub declaration: String,
    /// `columns` (phase 1 done) or `all`.
    pub phase: String,
    /// The adopted tables, `schema.table`.
    pub tables: Vec<String>,
    /// The statements `down` runs, in order.
    pub down: Vec<String>,
}

fn table() -> sea_orm::sea_query::TableRef {
    t(TENANCY_SCHEMA, Alias::new(TABLE))
}

/// Creates `tenancy.adoptions` if absent (owner-only: no grant to the app).
async fn ensure_table<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let create = Table::create()
        .table(table())
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("name"))
                .text()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(Alias::new("declaration")).text().not_null())
        .col(ColumnDef::new(Alias::new("phase")).text().not_null())
        .col(ColumnDef::new(Alias::new("tables")).text().not_null())
        .col(ColumnDef::new(Alias::new("down_sql")).text().not_null())
        .col(
            ColumnDef::new(Alias::new("applied_at"))
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .to_owned();
    db.execute_raw(pg(&create)).await.map(|_| ())
}

/// The recorded adoptions, latest first (none when the table does not exist).
pub async fn list<C: ConnectionTrait>(db: &C) -> Result<Vec<Recorded>, DbErr> {
    let exists = db
        .query_one_raw(probes::raw(
            "SELECT to_regclass('tenancy.adoptions') IS NOT NULL".into(),
        ))
        .await?
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false);
    if !exists {
        return Ok(vec![]);
    }
    let q = Query::select()
        .columns(["name", "declaration", "phase", "tables", "down_sql"].map(Alias::new))
        .from(table())
        .order_by(Alias::new("applied_at"), Order::Desc)
        .order_by(Alias::new("name"), Order::Desc)
        .to_owned();
    let mut out = Vec::new();
    for r in db.query_all_raw(pg(&q)).await? {
        let tables: String = r.try_get_by_index(3)?;
        let down: String = r.try_get_by_index(4)?;
        out.push(Recorded {
            name: r.try_get_by_index(0)?,
            declaration: r.try_get_by_index(1)?,
            phase: r.try_get_by_index(2)?,
            tables: tables
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            down: down
                .split(SEPARATOR)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
                .collect(),
        });
    }
    Ok(out)
}

/// Applies `phase` of `plan` (refused when it has blockers) and records it. Each step is
/// skipped when already done, so a rerun after an interruption resumes; the record is written
/// before the first change, so an interrupted adoption can still be undone.
pub async fn apply(
    manager: &SchemaManager<'_>,
    plan: &AdoptionPlan,
    phase: Phase,
) -> Result<(), AdoptionError> {
    let db = manager.get_connection();
    if !plan.blockers.is_empty() {
        return Err(AdoptionError::Blocked(plan.blockers.clone()));
    }
    let Some(adoption) = &plan.adoption else {
        return Ok(());
    };
    let name = adoption.record_name();
    let existing = list(db).await?.into_iter().find(|r| r.name == name);
    if phase == Phase::Enforce
        && !existing
            .as_ref()
            .is_some_and(|r| r.phase == "columns" || r.phase == "all" || r.phase == "applying-all")
    {
        return Err(AdoptionError::Blocked(vec![format!(
            "phase 2 of {name} needs phase 1 (columns and backfill) completed first: run `adopt ... --phase 1`"
        )]));
    }
    ensure_table(db).await?;
    // Down statements of the phases not yet recorded go first: down runs phase 2's undo, then
    // phase 1's. A resumed phase keeps the statements recorded when it first started (the
    // catalog it was planned from then still held the legacy keys).
    let mut down = plan.down_statements(match phase {
        Phase::Columns => Phase::Columns,
        _ if existing.is_some() => Phase::Enforce,
        _ => Phase::All,
    });
    let phase_name = match phase {
        Phase::Columns => "columns",
        _ => "all",
    };
    if let Some(rec) = &existing {
        let has_phase2 = rec.phase == "all" || rec.phase == "applying-all";
        if has_phase2 || phase == Phase::Columns {
            down = rec.down.clone();
        } else {
            down.extend(rec.down.iter().cloned());
        }
    }
    let tables = plan
        .tables
        .iter()
        .map(|t| format!("{}.{t}", adoption.schema))
        .collect::<Vec<_>>()
        .join(",");
    let existing_phase = existing.as_ref().map(|r| r.phase.clone());
    let write = |phase_value: String| {
        Query::insert()
            .into_table(table())
            .columns(["name", "declaration", "phase", "tables", "down_sql"].map(Alias::new))
            .values_panic([
                name.clone().into(),
                adoption.to_rust().into(),
                phase_value.into(),
                tables.clone().into(),
                down.join(SEPARATOR).into(),
            ])
            .on_conflict(
                OnConflict::column(Alias::new("name"))
                    .update_columns(["declaration", "phase", "tables", "down_sql"].map(Alias::new))
                    .to_owned(),
            )
            .to_owned()
    };
    let applying = match (phase, existing_phase.as_deref()) {
        (Phase::Columns, Some(p)) => p.to_owned(),
        (Phase::Columns, None) => "applying-columns".to_owned(),
        _ => "applying-all".to_owned(),
    };
    db.execute_raw(pg(&write(applying))).await?;
    for seg in &plan.segments {
        let wanted = match phase {
            Phase::All => true,
            p => seg.phase == p,
        };
        if !wanted {
            continue;
        }
        if seg.transactional {
            let txn = db.begin().await?;
            let done = match &seg.done_when {
                Some(probe) => txn
                    .query_one_raw(probe.clone())
                    .await?
                    .map(|r| r.try_get_by_index::<Option<bool>>(0))
                    .transpose()?
                    .flatten()
                    .unwrap_or(false),
                None => false,
            };
            if !done {
                seg.plan.up(&SchemaManager::new(&txn), true).await?;
            }
            txn.commit().await?;
        } else {
            seg.plan.up(manager, false).await?;
        }
    }
    let final_phase = match (phase, existing_phase.as_deref()) {
        (Phase::Columns, Some("all")) => "all".to_owned(),
        (Phase::Columns, _) => "columns".to_owned(),
        _ => phase_name.to_owned(),
    };
    db.execute_raw(pg(&write(final_phase))).await?;
    Ok(())
}

/// Undoes the most recent recorded adoption: refuses (unless forced) while its tables hold
/// rows of tenants other than the default one, like every `down`. Returns its name.
pub async fn undo_latest<C: ConnectionTrait + TransactionTrait>(
    db: &C,
) -> Result<Option<String>, DbErr> {
    let Some(rec) = list(db).await?.into_iter().next() else {
        return Ok(None);
    };
    let guard = Guard::KeepTenantAssignments {
        tables: rec
            .tables
            .iter()
            .filter_map(|t| t.split_once('.'))
            .map(|(s, t)| (s.to_owned(), t.to_owned()))
            .collect(),
    };
    let txn = db.begin().await?;
    let checked = guard.before_down(&txn).await;
    txn.rollback().await?;
    checked?;
    for sql in &rec.down {
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            sql.clone(),
        ))
        .await?;
    }
    let delete = Query::delete()
        .from_table(table())
        .and_where(Expr::col(Alias::new("name")).eq(rec.name.clone()))
        .to_owned();
    db.execute_raw(pg(&delete)).await?;
    Ok(Some(rec.name))
}
