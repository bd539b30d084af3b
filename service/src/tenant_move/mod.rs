//! Moving a tenant between isolation modes: promote a shared tenant to its own schema, or
//! demote a dedicated one back into the shared tables, while it keeps working.
//!
//! A move is a sequence of short transactions, each of which leaves the tenant working:
//!
//! 1. **start** (audited superadmin transaction): records the move in `tenancy.tenant_moves`;
//!    a promote creates the schema and role with the provisioning function.
//! 2. **copy** (tenant-bound transactions as the tenant's role, no new privilege): batches of
//!    rows in key order from the old place into the new one. The destination is the progress
//!    record: a rerun continues after the destination's last key.
//! 3. **switch** (one audited superadmin transaction): takes the tenant's move lock
//!    exclusively (every tenant transaction holds it shared, m0014), so the tenant's writes
//!    wait; applies the delta (rows written during the copy: deleted, inserted, changed),
//!    verifies row counts and checksums of every table equal in both places, flips
//!    `tenancy.tenants.isolation`, commits. Any failure before the commit changes nothing.
//! 4. **finish**: the old rows are removed (batches for a promote; the schema and role
//!    dropped for a demote), the move's row deleted, audited with the counts.
//!
//! Rerunning a move resumes where it stopped; rerunning a finished one is a no-op.

mod tables;

use std::time::{Duration, Instant};

use entity::tenants;
use migration::dedicated::schema_plan::REFERENCE_DATA;
use migration::dedicated::{MOVE_LOCK_CLASS, TenantSchema};
use migration::names::{APP_SCHEMA, DEFAULT_TENANT_ID};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, Statement, Value};
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::context::{Actor, MemberRole, TenantContext};
use crate::dedicated::Isolation;
use crate::error::{Result, ServiceError};
use crate::superadmin::{SuperadminGrant, SuperadminTx};
use crate::tenantry::Tenantry;
use tables::{Direction, MovedTable};

/// How far one call goes, and how it batches.
#[derive(Debug, Clone)]
pub struct MoveOptions {
    /// Rows per copy (and removal) batch; each batch is one short transaction.
    pub batch_rows: u32,
    /// How long the switch waits for the tenant's transactions in flight before it gives up
    /// (nothing changed; rerun). The tenant's new transactions wait behind it meanwhile.
    pub lock_wait: Duration,
    /// Where to stop (a later call resumes).
    pub until: MoveUntil,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self {
            batch_rows: 1000,
            lock_wait: Duration::from_millis(500),
            until: MoveUntil::Done,
        }
    }
}

/// Where a call stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveUntil {
    /// Through the end.
    Done,
    /// After the start (the move recorded, a promote's schema created).
    Started,
    /// After this many copy batches of this call.
    Batches(u32),
    /// After the switch, before the old rows are removed.
    Switched,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveOutcome {
    /// The tenant already had the target mode and no move was in progress: nothing done.
    AlreadyThere,
    /// Stopped as asked ([`MoveUntil`]); rerun to continue.
    Stopped,
    /// The tenant is in the target mode and the old rows are gone.
    Done,
}

/// One table's counts in a move.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableMove {
    /// `schema.table` of the destination.
    pub table: String,
    /// Rows copied by batches in this call.
    pub copied: u64,
    /// Destination rows the switch deleted (deleted at the source during the copy).
    pub delta_deleted: u64,
    /// Rows the switch inserted or rewrote (written at the source during the copy).
    pub delta_written: u64,
    /// Rows verified equal (count and checksum) by the switch.
    pub verified: u64,
    /// Old rows removed after the switch.
    pub removed: u64,
}

/// What a call did.
#[derive(Debug, Clone, Serialize)]
pub struct MoveReport {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The mode it is moving (or moved) to.
    pub target: Isolation,
    /// How the call ended.
    pub outcome: MoveOutcome,
    /// Copy batches run in this call.
    pub batches: u32,
    /// Per table, parents first.
    pub tables: Vec<TableMove>,
    /// The switch transaction's time from asking for the move lock to its commit, in
    /// milliseconds: the longest any write of the tenant waited for it (when it ran).
    pub switch_ms: Option<f64>,
    /// Where the switch's time went, in milliseconds: waiting for the lock, the delta, the
    /// verification, the flip and commit.
    pub switch_phases_ms: Vec<(String, f64)>,
}

#[derive(FromQueryResult)]
struct MoveRow {
    target: String,
    phase: String,
}

fn parse_isolation(s: &str) -> Isolation {
    if s == "dedicated" {
        Isolation::Dedicated
    } else {
        Isolation::Shared
    }
}

fn sql(sql: impl Into<String>, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn move_row(sa: &SuperadminTx, tenant: Uuid) -> Result<Option<MoveRow>> {
    Ok(MoveRow::find_by_statement(sql(
        "SELECT target, phase FROM tenancy.tenant_moves WHERE subject_tenant_id = $1 FOR UPDATE",
        vec![tenant.into()],
    ))
    .one(sa.conn())
    .await?)
}

async fn set_mode(sa: &SuperadminTx, tenant: Uuid, mode: Isolation) -> Result<()> {
    let schema = match mode {
        Isolation::Shared => None,
        Isolation::Dedicated => Some(TenantSchema::for_tenant(tenant).to_string()),
    };
    sa.conn()
        .execute_raw(sql(
            "UPDATE tenancy.tenants SET isolation = $2, schema_name = $3 WHERE id = $1",
            vec![tenant.into(), mode.as_str().into(), schema.into()],
        ))
        .await?;
    Ok(())
}

/// The tenant's rows that exist only in its schema and would be lost by a demote (seed 004's
/// reference rows are recreated by a later promote, so they do not count).
async fn rows_only_in_schema(
    sa: &SuperadminTx,
    schema: &TenantSchema,
    only_schema: &[String],
) -> Result<Vec<(String, u64)>> {
    let mut lost = Vec::new();
    for table in only_schema {
        let seeded = REFERENCE_DATA
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, rows)| rows.join("\n"));
        let t = migration::ddl::qualified(schema.as_str(), table);
        let n = match seeded {
            Some(names) => {
                tables::count_with(
                    sa.conn(),
                    format!(
                        "SELECT count(*) AS n FROM {t} x WHERE x.name::text <> ALL \
                         (pg_catalog.string_to_array($1, E'\\n'))"
                    ),
                    names.into(),
                )
                .await?
            }
            None => {
                tables::count_with(
                    sa.conn(),
                    format!("SELECT count(*) AS n FROM {t} x WHERE $1::text IS NOT NULL"),
                    String::new().into(),
                )
                .await?
            }
        };
        if n > 0 {
            lost.push((format!("{schema}.{table}"), n));
        }
    }
    Ok(lost)
}

/// Refuses (conflict) while a move of the tenant is in progress: offboarding then would leave
/// the half-filled other place behind.
pub(crate) async fn refuse_while_moving(sa: &SuperadminTx, tenant: Uuid) -> Result<()> {
    let row = sa
        .conn()
        .query_one_raw(sql(
            "SELECT target FROM tenancy.tenant_moves WHERE subject_tenant_id = $1",
            vec![tenant.into()],
        ))
        .await?;
    match row {
        Some(r) => Err(ServiceError::Conflict(format!(
            "a move of this tenant to {} is in progress: finish it first",
            r.try_get_by_index::<String>(0)?
        ))),
        None => Ok(()),
    }
}

impl Tenantry {
    /// Moves tenant `tenant_id` to `target` ([`Isolation::Dedicated`]: promote into its own
    /// schema; [`Isolation::Shared`]: demote back), while it keeps working. Needs the
    /// superadmin pool; `actor` and `reason` go into every audit row of the move.
    ///
    /// Resumable: each step is its own transaction, and a rerun continues where an earlier
    /// call stopped (or was killed); a rerun of a finished move is a no-op
    /// ([`MoveOutcome::AlreadyThere`]). A move in progress to the other mode is a
    /// [`ServiceError::Conflict`]; so is a verification mismatch at the switch (nothing
    /// changed: the tenant stays where it was) and a demote that would lose rows only its
    /// schema can hold. The switch waits at most [`MoveOptions::lock_wait`] for the tenant's
    /// transactions in flight, else [`ServiceError::Unavailable`] (nothing changed, rerun).
    pub async fn move_tenant(
        &self,
        actor: &str,
        reason: &str,
        tenant_id: Uuid,
        target: Isolation,
        options: &MoveOptions,
    ) -> Result<MoveReport> {
        let span =
            tracing::info_span!("tenant.move", tenant_id = %tenant_id, target = target.as_str());
        Mover {
            tenantry: self,
            actor,
            reason,
            tenant: tenant_id,
            target,
            options,
            schema: TenantSchema::for_tenant(tenant_id),
        }
        .run()
        .instrument(span)
        .await
    }
}

struct Mover<'a> {
    tenantry: &'a Tenantry,
    actor: &'a str,
    reason: &'a str,
    tenant: Uuid,
    target: Isolation,
    options: &'a MoveOptions,
    schema: TenantSchema,
}

impl Mover<'_> {
    async fn superadmin(&self, action: &str) -> Result<SuperadminTx> {
        self.tenantry
            .superadmin(SuperadminGrant {
                actor: self.actor,
                reason: self.reason,
                action,
                scope: Some(self.tenant),
            })
            .await
    }

    fn direction(&self) -> Direction<'_> {
        match self.target {
            Isolation::Dedicated => Direction {
                from: APP_SCHEMA,
                to: self.schema.as_str(),
            },
            Isolation::Shared => Direction {
                from: self.schema.as_str(),
                to: APP_SCHEMA,
            },
        }
    }

    fn report(&self, outcome: MoveOutcome, tables: &[MovedTable]) -> MoveReport {
        let dir = self.direction();
        MoveReport {
            tenant_id: self.tenant,
            target: self.target,
            outcome,
            batches: 0,
            tables: tables
                .iter()
                .map(|t| TableMove {
                    table: format!("{}.{}", dir.to, t.name),
                    ..Default::default()
                })
                .collect(),
            switch_ms: None,
            switch_phases_ms: Vec::new(),
        }
    }

    async fn run(&self) -> Result<MoveReport> {
        if self.tenant.to_string() == DEFAULT_TENANT_ID {
            return Err(ServiceError::Conflict(
                "the default tenant cannot change its isolation".into(),
            ));
        }
        let Some((tables, phase)) = self.start().await? else {
            return Ok(self.report(MoveOutcome::AlreadyThere, &[]));
        };
        let mut report = self.report(MoveOutcome::Stopped, &tables);
        if self.options.until == MoveUntil::Started {
            return Ok(report);
        }
        if phase == "copying" {
            if !self.copy(&tables, &mut report).await? {
                return Ok(report);
            }
            self.switch(&tables, &mut report).await?;
            if self.options.until == MoveUntil::Switched {
                return Ok(report);
            }
        }
        self.finish(&tables, &mut report).await?;
        report.outcome = MoveOutcome::Done;
        Ok(report)
    }

    /// Reads (or records) the move; `None` when the tenant is already in the target mode.
    async fn start(&self) -> Result<Option<(Vec<MovedTable>, String)>> {
        let sa = self.superadmin("tenant.move").await?;
        let tenant = tenants::Entity::find_by_id(self.tenant)
            .one(sa.conn())
            .await?
            .ok_or(ServiceError::NotFound("tenant"))?;
        let current = parse_isolation(&tenant.isolation);
        let phase = match move_row(&sa, self.tenant).await? {
            Some(m) if parse_isolation(&m.target) != self.target => {
                return Err(ServiceError::Conflict(format!(
                    "a move of this tenant to {} is in progress: finish it first",
                    m.target
                )));
            }
            Some(m) => m.phase,
            None if current == self.target => {
                sa.commit().await?;
                return Ok(None);
            }
            None => {
                if self.target == Isolation::Dedicated {
                    // The provisioning function creates the schema of a dedicated tenant
                    // only: the row says so inside this transaction, and says shared again
                    // before it commits (other transactions never see the interim).
                    set_mode(&sa, self.tenant, Isolation::Dedicated).await?;
                    crate::dedicated::create_schema(&sa, self.tenant).await?;
                    set_mode(&sa, self.tenant, Isolation::Shared).await?;
                }
                "new".to_owned()
            }
        };
        let (tables, only_schema) = tables::discover(sa.conn(), self.schema.as_str()).await?;
        if phase == "new" {
            if self.target == Isolation::Shared {
                let lost = rows_only_in_schema(&sa, &self.schema, &only_schema).await?;
                if !lost.is_empty() {
                    let list: Vec<String> = lost
                        .iter()
                        .map(|(t, n)| format!("{t}: {n} row(s)"))
                        .collect();
                    return Err(ServiceError::Conflict(format!(
                        "shared tables have no place for these rows of the tenant's schema \
                         ({}); nothing changed",
                        list.join(", ")
                    )));
                }
            }
            sa.conn()
                .execute_raw(sql(
                    "INSERT INTO tenancy.tenant_moves (subject_tenant_id, target, phase) \
                     VALUES ($1, $2, 'copying')",
                    vec![self.tenant.into(), self.target.as_str().into()],
                ))
                .await?;
            sa.audit(
                "tenant.move.started",
                Some(self.tenant),
                serde_json::json!({ "from": current, "to": self.target, "schema": self.schema.as_str() }),
            )
            .await?;
            tracing::info!(schema = %self.schema, "move started");
        }
        sa.commit().await?;
        let phase = if phase == "new" {
            "copying".into()
        } else {
            phase
        };
        Ok(Some((tables, phase)))
    }

    fn context(&self) -> TenantContext {
        TenantContext::new(
            self.tenant,
            Actor::System { job: "tenant.move" },
            MemberRole::Owner,
        )
    }

    /// A tenant-bound transaction as the tenant's role (a shared tenant's transaction runs as
    /// the app login: its role may read the shared rows and write its own schema).
    async fn tenant_tx(&self) -> Result<crate::tx::TenantTx> {
        let tx = self.tenantry.begin(&self.context()).await?;
        if self.target == Isolation::Dedicated {
            tx.conn()
                .execute_raw(sql(
                    format!(
                        "SET LOCAL ROLE {}",
                        migration::ddl::ident(self.schema.as_str())
                    ),
                    vec![],
                ))
                .await?;
        }
        Ok(tx)
    }

    /// The batched copy; `false` when it stopped as asked.
    async fn copy(&self, tables: &[MovedTable], report: &mut MoveReport) -> Result<bool> {
        let dir = self.direction();
        let limit = self.options.batch_rows.max(1);
        for (i, table) in tables.iter().enumerate() {
            let tx = self.tenant_tx().await?;
            let mut cursor = tables::text(tx.conn(), table.last_key(dir), self.tenant).await?;
            tx.commit().await?;
            loop {
                if let MoveUntil::Batches(n) = self.options.until
                    && report.batches >= n
                {
                    return Ok(false);
                }
                let tx = self.tenant_tx().await?;
                let counts = tables::batch(
                    tx.conn(),
                    table.copy_batch(dir, cursor.is_some(), limit),
                    self.tenant,
                    cursor.clone(),
                )
                .await?;
                tx.commit().await?;
                report.batches += 1;
                report.tables[i].copied += counts.written.max(0) as u64;
                if counts.window_rows < i64::from(limit) || counts.last_key.is_none() {
                    break;
                }
                cursor = counts.last_key;
            }
            tracing::info!(table = %table.name, copied = report.tables[i].copied, "table copied");
        }
        Ok(true)
    }

    /// The switch: pause the tenant, apply the delta, verify, flip, commit.
    async fn switch(&self, tables: &[MovedTable], report: &mut MoveReport) -> Result<()> {
        let dir = self.direction();
        let sa = self.superadmin("tenant.move.switch").await?;
        match move_row(&sa, self.tenant).await? {
            Some(m) if m.phase == "copying" => {}
            // Another call switched meanwhile: nothing to do here.
            _ => return Ok(()),
        }
        sa.conn()
            .execute_raw(sql(
                "SELECT pg_catalog.set_config('lock_timeout', $1, true)",
                vec![format!("{}ms", self.options.lock_wait.as_millis().max(1)).into()],
            ))
            .await?;
        let asked = Instant::now();
        let locked = sa
            .conn()
            .execute_raw(sql(
                "SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2::text))",
                vec![MOVE_LOCK_CLASS.into(), self.tenant.to_string().into()],
            ))
            .await;
        if let Err(e) = locked {
            if crate::error::sqlstate(&e).as_deref() == Some("55P03") {
                return Err(ServiceError::Unavailable(format!(
                    "the tenant's transactions did not pause within {} ms (a long transaction \
                     of the tenant is open); nothing changed, rerun the move",
                    self.options.lock_wait.as_millis()
                )));
            }
            return Err(e.into());
        }
        let mut lap = Instant::now();
        let mut phase = |name: &str, report: &mut MoveReport| {
            report
                .switch_phases_ms
                .push((name.to_owned(), lap.elapsed().as_secs_f64() * 1000.0));
            lap = Instant::now();
        };
        phase("lock", report);
        // The rows' updated_at are copied, not restamped by the tables' trigger.
        sa.conn()
            .execute_raw(sql(
                "SELECT pg_catalog.set_config('tenantry.backfill', 'on', true)",
                vec![],
            ))
            .await?;
        for (i, table) in tables.iter().enumerate().rev() {
            report.tables[i].delta_deleted =
                tables::count(sa.conn(), table.delta_delete(dir), self.tenant).await?;
        }
        phase("delta deletes", report);
        for (i, table) in tables.iter().enumerate() {
            report.tables[i].delta_written =
                tables::count(sa.conn(), table.delta_upsert(dir), self.tenant).await?;
        }
        phase("delta writes", report);
        for (i, table) in tables.iter().enumerate() {
            let old = tables::checksum(sa.conn(), table, dir.from, self.tenant).await?;
            let new = tables::checksum(sa.conn(), table, dir.to, self.tenant).await?;
            if old != new {
                tracing::warn!(table = %table.name, old = ?old, new = ?new, "move verification failed");
                return Err(ServiceError::Conflict(format!(
                    "verification failed for {}: {} row(s) at {}, {} row(s) at {} (row counts or \
                     checksums differ); nothing changed, the tenant stays {}",
                    table.name,
                    old.n,
                    dir.from,
                    new.n,
                    dir.to,
                    if self.target == Isolation::Dedicated {
                        "shared"
                    } else {
                        "dedicated"
                    },
                )));
            }
            report.tables[i].verified = new.n.max(0) as u64;
        }
        phase("verify", report);
        set_mode(&sa, self.tenant, self.target).await?;
        let details = serde_json::to_value(&report.tables).unwrap_or_default();
        sa.conn()
            .execute_raw(sql(
                "UPDATE tenancy.tenant_moves SET phase = 'switched', switched_at = now(), \
                 details = $2 WHERE subject_tenant_id = $1",
                vec![self.tenant.into(), details.clone().into()],
            ))
            .await?;
        sa.audit(
            "tenant.move.switched",
            Some(self.tenant),
            serde_json::json!({ "to": self.target, "tables": details }),
        )
        .await?;
        sa.commit().await?;
        phase("flip and commit", report);
        let ms = asked.elapsed().as_secs_f64() * 1000.0;
        report.switch_ms = Some(ms);
        tracing::info!(switch_ms = ms, "tenant switched");
        Ok(())
    }

    /// Removes the old rows and the move's record.
    async fn finish(&self, tables: &[MovedTable], report: &mut MoveReport) -> Result<()> {
        let dir = self.direction();
        let limit = self.options.batch_rows.max(1);
        if self.target == Isolation::Dedicated {
            for (i, table) in tables.iter().enumerate().rev() {
                loop {
                    let tx = self.tenantry.begin(&self.context()).await?;
                    let n =
                        tables::count(tx.conn(), table.remove_batch(dir.from, limit), self.tenant)
                            .await?;
                    tx.commit().await?;
                    report.tables[i].removed += n;
                    if n < u64::from(limit) {
                        break;
                    }
                }
            }
        }
        let sa = self.superadmin("tenant.move.finish").await?;
        if move_row(&sa, self.tenant).await?.is_none() {
            sa.commit().await?;
            return Ok(());
        }
        if self.target == Isolation::Shared {
            // The offboarding function drops a dedicated tenant's schema and role: as at the
            // start, the row says dedicated only inside this transaction.
            for (i, table) in tables.iter().enumerate() {
                report.tables[i].removed = tables::count(
                    sa.conn(),
                    format!(
                        "SELECT count(*) AS n FROM {} x WHERE x.tenant_id = $1",
                        migration::ddl::qualified(dir.from, &table.name)
                    ),
                    self.tenant,
                )
                .await?;
            }
            set_mode(&sa, self.tenant, Isolation::Dedicated).await?;
            crate::dedicated::drop_schema(&sa, self.tenant).await?;
            set_mode(&sa, self.tenant, Isolation::Shared).await?;
        }
        sa.conn()
            .execute_raw(sql(
                "DELETE FROM tenancy.tenant_moves WHERE subject_tenant_id = $1",
                vec![self.tenant.into()],
            ))
            .await?;
        let removed: Vec<_> = report
            .tables
            .iter()
            .map(|t| serde_json::json!({ "table": t.table, "removed": t.removed }))
            .collect();
        sa.audit(
            "tenant.move.finished",
            Some(self.tenant),
            serde_json::json!({ "to": self.target, "removed": removed }),
        )
        .await?;
        sa.commit().await?;
        tracing::info!("move finished");
        Ok(())
    }
}
