//! Tenants: the current tenant for its members, and the superadmin's lifecycle operations
//! (create users, provision, list, suspend and reactivate, offboard).
//!
//! The lifecycle operations are methods of [`SuperadminTx`]: each runs in the caller's audited
//! superadmin transaction and adds its own `superadmin_audit_logs` row to it, so the change and
//! its trail commit (or roll back) together.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use entity::{tenant_users, tenants, users};
use migration::ddl::qualified;
use migration::dedicated::TenantSchema;
use migration::names::DEFAULT_TENANT_ID;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, Statement, Value,
};
use tracing::Instrument;
use uuid::Uuid;

use crate::audit;
use crate::context::{Actor, MemberRole, TenantContext};
use crate::error::{Result, ServiceError};
use crate::members::is_unique_violation;
use crate::superadmin::SuperadminTx;
use crate::tx::TenantTx;

pub use crate::dedicated::Isolation;

/// The longest accepted e-mail address, in bytes.
pub const MAX_EMAIL_BYTES: usize = 320;

/// The longest e-mail address accepted from clients, in characters.
pub const MAX_EMAIL_CHARS: usize = 320;
/// The longest accepted tenant or user name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A tenant's slug, checked once: `^[a-z0-9][a-z0-9-]{1,62}$` (2 to 63 characters, lowercase
/// letters, digits and dashes, not starting with a dash). Parse, don't validate: a
/// `TenantSlug` is always well-formed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Checks `s` (as given: no trimming or lowercasing).
    pub fn parse(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let well_formed = (2..=63).contains(&bytes.len())
            && bytes
                .first()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(ServiceError::invalid(
                "slug",
                "2 to 63 characters of a-z, 0-9 and '-', not starting with '-'",
            ))
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for TenantSlug {
    type Err = ServiceError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TenantSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A tenant's status. Only `active` and `trial` tenants can be used: API keys and member
/// contexts of the others are refused on their next use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// In use.
    Active,
    /// Stopped by the operator; can be reactivated.
    Suspended,
    /// In use, on a trial.
    Trial,
    /// Ended by the customer.
    Cancelled,
}

impl TenantStatus {
    /// The name stored in `tenants.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Trial => "trial",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or submitted status.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "trial" => Ok(Self::Trial),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(ServiceError::invalid(
                "status",
                "must be active, suspended, trial or cancelled",
            )),
        }
    }

    /// Whether keys and members of a tenant in this status may act.
    pub fn allows_use(self) -> bool {
        matches!(self, Self::Active | Self::Trial)
    }
}

impl fmt::Display for TenantStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    /// Display name (1..=200 characters).
    pub name: String,
    /// Unique slug, checked as a [`TenantSlug`].
    pub slug: String,
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// Where the data is meant to live: 1..=32 characters of a-z, 0-9 and '-'.
    pub region: String,
    /// The administrator's address, if known.
    pub admin_email: Option<String>,
}

/// What [`SuperadminTx::offboard`] exported and deleted, per table (`schema.table`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OffboardReport {
    /// Rows written to the export, per table, parents first (the tenant row first of all).
    pub exported: Vec<(String, u64)>,
    /// Rows deleted, per table, children first (the tenant row last).
    pub purged: Vec<(String, u64)>,
}

fn check_name(field: &'static str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ServiceError::invalid(
            field,
            format!("required, at most {MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(name.to_owned())
}

/// A plausible address: `local@domain`, no spaces or control characters, at most 320
/// characters.
pub fn check_email(email: &str) -> Result<String> {
    let email = email.trim();
    let plausible = email.chars().count() <= MAX_EMAIL_CHARS
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(email.to_owned())
    } else {
        Err(ServiceError::invalid(
            "email",
            "must look like local@domain, at most 320 characters",
        ))
    }
}

/// The current tenant (any member).
pub async fn current(tx: &TenantTx) -> Result<tenants::Model> {
    tenants::Entity::find()
        .filter(tenants::Column::Id.eq(tx.tenant_id()))
        .one(tx.conn())
        .instrument(tracing::debug_span!("tenants.current", tenant_id = %tx.tenant_id()))
        .await?
        .ok_or(ServiceError::NotFound("tenant"))
}

/// Changes the current tenant's name and/or settings (admins only). `settings` replaces the
/// whole object. Status, plan and slug are the superadmin's: the database function this calls
/// (`tenancy.update_current_tenant`) can change nothing else, for no other tenant.
pub async fn update_current(
    tx: &TenantTx,
    name: Option<String>,
    settings: Option<serde_json::Value>,
) -> Result<tenants::Model> {
    async {
        tx.context().require_admin()?;
        let name = name.map(|n| check_name("name", &n)).transpose()?;
        if let Some(s) = &settings
            && !s.is_object()
        {
            return Err(ServiceError::invalid("settings", "must be a JSON object"));
        }
        if name.is_none() && settings.is_none() {
            return current(tx).await;
        }
        #[derive(FromQueryResult)]
        struct Changed {
            changed: bool,
        }
        let changed = Changed::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT tenancy.update_current_tenant(CAST($1 AS text), CAST($2 AS jsonb)) AS changed",
            [Value::from(name.clone()), Value::from(settings.clone())],
        ))
        .one(tx.conn())
        .await?;
        if !changed.is_some_and(|c| c.changed) {
            return Err(ServiceError::NotFound("tenant"));
        }
        audit::record(
            tx,
            "tenant.update",
            Some("tenant"),
            Some(tx.tenant_id().to_string()),
            serde_json::json!({ "name": name, "settings_changed": settings.is_some() }),
        )
        .await?;
        current(tx).await
    }
    .instrument(tracing::info_span!("tenants.update_current", tenant_id = %tx.tenant_id()))
    .await
}

/// `(schema, table)`.
type Table = (String, String);
/// A foreign key as `(referencing table, referenced table)`.
type Edge = (Table, Table);

/// `(schema, table)` pairs in an order where every table comes after the tenant tables it
/// references (Kahn's algorithm, ties by name; tables in a cycle, if any, last by name).
fn parents_first(tables: &[Table], edges: &[Edge]) -> Vec<Table> {
    let all: BTreeSet<&Table> = tables.iter().collect();
    let mut parents: BTreeMap<&Table, BTreeSet<&Table>> =
        all.iter().map(|t| (*t, BTreeSet::new())).collect();
    for (child, parent) in edges {
        if child != parent
            && all.contains(child)
            && all.contains(parent)
            && let Some(set) = parents.get_mut(child)
        {
            set.insert(parent);
        }
    }
    let mut placed: Vec<Table> = Vec::with_capacity(tables.len());
    let mut done: BTreeSet<&Table> = BTreeSet::new();
    loop {
        let ready: Vec<&Table> = parents
            .iter()
            .filter(|(t, ps)| !done.contains(*t) && ps.iter().all(|p| done.contains(p)))
            .map(|(t, _)| *t)
            .collect();
        let Some(next) = ready.first() else { break };
        done.insert(next);
        placed.push((*next).clone());
    }
    for t in all {
        if !done.contains(t) {
            placed.push(t.clone());
        }
    }
    placed
}

/// Foreign keys between tables, as `(child, parent)`, from `pg_constraint`.
async fn foreign_key_edges<C: ConnectionTrait>(conn: &C) -> Result<Vec<Edge>> {
    #[derive(FromQueryResult)]
    struct Edge {
        child_schema: String,
        child_table: String,
        parent_schema: String,
        parent_table: String,
    }
    let rows = Edge::find_by_statement(Statement::from_string(
        DbBackend::Postgres,
        "SELECT cn.nspname::text AS child_schema, c.relname::text AS child_table, \
                pn.nspname::text AS parent_schema, p.relname::text AS parent_table \
         FROM pg_catalog.pg_constraint k \
         JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
         JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace \
         JOIN pg_catalog.pg_class p ON p.oid = k.confrelid \
         JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace \
         WHERE k.contype = 'f'",
    ))
    .all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|e| {
            (
                (e.child_schema, e.child_table),
                (e.parent_schema, e.parent_table),
            )
        })
        .collect())
}

fn write_line(
    out: &mut (dyn std::io::Write + Send),
    table: &str,
    row: serde_json::Value,
) -> Result<()> {
    let line = serde_json::json!({ "table": table, "row": row });
    serde_json::to_writer(&mut *out, &line)
        .map_err(|e| e.to_string())
        .and_then(|()| out.write_all(b"\n").map_err(|e| e.to_string()))
        .map_err(|error| {
            tracing::warn!(%error, "writing the offboarding export failed");
            ServiceError::Unavailable("writing the export failed".into())
        })
}

impl SuperadminTx {
    /// Creates a user (global: a user may then join many tenants). A registered address is
    /// [`ServiceError::Conflict`]. The password hash is stored as given (hash it first).
    pub async fn create_user(
        &self,
        email: &str,
        full_name: &str,
        password_hash: Option<&str>,
    ) -> Result<Uuid> {
        let email = check_email(email)?;
        let full_name = full_name.trim();
        if full_name.chars().count() > MAX_NAME_CHARS {
            return Err(ServiceError::invalid(
                "full_name",
                format!("at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if password_hash.is_some_and(|h| h.is_empty() || h.len() > 1000) {
            return Err(ServiceError::invalid(
                "password_hash",
                "1 to 1000 bytes when given",
            ));
        }
        let exists = users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(self.conn())
            .await?
            .is_some();
        if exists {
            return Err(ServiceError::Conflict(
                "a user with this email exists".into(),
            ));
        }
        let user = users::ActiveModel {
            id: ActiveValue::Set(Uuid::new_v4()),
            email: ActiveValue::Set(email.clone()),
            full_name: ActiveValue::Set(full_name.to_owned()),
            password_hash: ActiveValue::Set(password_hash.map(str::to_owned)),
            ..Default::default()
        };
        let user = match user.insert(self.conn()).await {
            Ok(user) => user,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict(
                    "a user with this email exists".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.audit(
            "user.create",
            None,
            serde_json::json!({ "user_id": user.id, "email": email }),
        )
        .await?;
        Ok(user.id)
    }

    /// Creates a tenant and makes `owner_user_id` its owner, in this transaction. Returns the
    /// tenant and the owner's context. A taken slug is [`ServiceError::Conflict`]; an unknown
    /// user is [`ServiceError::NotFound`] (`user`).
    pub async fn provision_tenant(
        &self,
        new: NewTenant,
        owner_user_id: Uuid,
    ) -> Result<(tenants::Model, TenantContext)> {
        self.provision_tenant_with(new, owner_user_id, Isolation::Shared)
            .await
    }

    /// [`Self::provision_tenant`] with a chosen [`Isolation`]. A dedicated tenant also gets its
    /// schema `t_<hex of its id>` and role, every tenant-schema migration and its reference
    /// data, all in this transaction: if anything fails, nothing is left behind. An existing
    /// schema or role of that name is [`ServiceError::Conflict`].
    pub async fn provision_tenant_with(
        &self,
        new: NewTenant,
        owner_user_id: Uuid,
        isolation: Isolation,
    ) -> Result<(tenants::Model, TenantContext)> {
        let name = check_name("name", &new.name)?;
        let slug = TenantSlug::parse(&new.slug)?;
        if !matches!(new.plan.as_str(), "free" | "pro" | "enterprise") {
            return Err(ServiceError::invalid(
                "plan",
                "must be free, pro or enterprise",
            ));
        }
        let region_ok = (1..=32).contains(&new.region.len())
            && new
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ServiceError::invalid(
                "region",
                "1 to 32 characters of a-z, 0-9 and '-'",
            ));
        }
        let admin_email = new.admin_email.as_deref().map(check_email).transpose()?;
        let taken = tenants::Entity::find()
            .filter(tenants::Column::Slug.eq(slug.as_str()))
            .one(self.conn())
            .await?
            .is_some();
        if taken {
            return Err(ServiceError::Conflict("the slug is taken".into()));
        }
        if users::Entity::find_by_id(owner_user_id)
            .one(self.conn())
            .await?
            .is_none()
        {
            return Err(ServiceError::NotFound("user"));
        }
        let id = Uuid::new_v4();
        let tenant = tenants::ActiveModel {
            id: ActiveValue::Set(id),
            name: ActiveValue::Set(name),
            slug: ActiveValue::Set(slug.into_string()),
            plan: ActiveValue::Set(new.plan),
            region: ActiveValue::Set(new.region),
            admin_email: ActiveValue::Set(admin_email),
            isolation: ActiveValue::Set(isolation.as_str().to_owned()),
            schema_name: ActiveValue::Set(match isolation {
                Isolation::Shared => None,
                Isolation::Dedicated => Some(TenantSchema::for_tenant(id).to_string()),
            }),
            ..Default::default()
        };
        let tenant = match tenant.insert(self.conn()).await {
            Ok(t) => t,
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::Conflict("the slug is taken".into()));
            }
            Err(e) => return Err(e.into()),
        };
        tenant_users::ActiveModel {
            tenant_id: ActiveValue::Set(tenant.id),
            user_id: ActiveValue::Set(owner_user_id),
            role: ActiveValue::Set(MemberRole::Owner.as_str().to_owned()),
            ..Default::default()
        }
        .insert(self.conn())
        .await?;
        let schema = match isolation {
            Isolation::Shared => None,
            Isolation::Dedicated => Some(crate::dedicated::create_schema(self, tenant.id).await?),
        };
        self.audit(
            "tenant.provision",
            Some(tenant.id),
            serde_json::json!({
                "slug": tenant.slug, "plan": tenant.plan, "owner": owner_user_id,
                "isolation": isolation, "schema": schema.as_ref().map(TenantSchema::as_str),
            }),
        )
        .await?;
        tracing::info!(tenant_id = %tenant.id, slug = %tenant.slug, "tenant provisioned");
        let ctx = TenantContext::new(
            tenant.id,
            Actor::User {
                user_id: owner_user_id,
            },
            MemberRole::Owner,
        );
        Ok((tenant, ctx))
    }

    /// Every tenant, oldest first.
    pub async fn list_tenants(&self) -> Result<Vec<tenants::Model>> {
        let all = tenants::Entity::find()
            .order_by_asc(tenants::Column::CreatedAt)
            .order_by_asc(tenants::Column::Slug)
            .all(self.conn())
            .await?;
        self.audit(
            "tenant.list",
            None,
            serde_json::json!({ "count": all.len() }),
        )
        .await?;
        Ok(all)
    }

    /// Sets a tenant's status. Suspending (or cancelling) stops its API keys and member
    /// contexts on their next authentication; reactivating lets them work again.
    pub async fn set_tenant_status(
        &self,
        tenant_id: Uuid,
        status: TenantStatus,
    ) -> Result<tenants::Model> {
        async {
            let tenant = tenants::Entity::find_by_id(tenant_id)
                .one(self.conn())
                .await?
                .ok_or(ServiceError::NotFound("tenant"))?;
            let from = tenant.status.clone();
            let mut row: tenants::ActiveModel = tenant.into();
            row.status = ActiveValue::Set(status.as_str().to_owned());
            let tenant = row.update(self.conn()).await?;
            self.audit(
                "tenant.set_status",
                Some(tenant_id),
                serde_json::json!({ "from": from, "to": status }),
            )
            .await?;
            Ok(tenant)
        }
        .instrument(tracing::info_span!("tenants.set_status", tenant_id = %tenant_id))
        .await
    }

    /// Offboards a tenant: writes every row of every tenant table of that tenant to `out` as
    /// JSON lines `{"table": "schema.table", "row": {...}}` (the tenant row first, then tables
    /// parents first), then deletes those rows children first and the tenant row last. Tables
    /// are discovered from the catalog, so tables added later are included with no change
    /// here. Other tenants' rows are untouched. The default tenant cannot be offboarded.
    ///
    /// Nothing is deleted unless the whole export was written; commit the transaction only
    /// once `out` is safely stored (it holds each table's rows of the tenant in memory while
    /// writing them).
    pub async fn offboard(
        &self,
        tenant_id: Uuid,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<OffboardReport> {
        self.offboard_with(tenant_id, false, out).await
    }

    /// [`Self::offboard`]; for a dedicated tenant, the export also covers its schema's tables,
    /// and the schema and its role are then dropped in this transaction. A dedicated tenant
    /// that still has members is refused ([`ServiceError::Conflict`]) unless `force` (seed
    /// 004's rule; a shared tenant's members are purged with its rows, as before).
    pub async fn offboard_with(
        &self,
        tenant_id: Uuid,
        force: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<OffboardReport> {
        async {
            if tenant_id.to_string() == DEFAULT_TENANT_ID {
                return Err(ServiceError::Conflict(
                    "the default tenant cannot be offboarded".into(),
                ));
            }
            let tenant = tenants::Entity::find_by_id(tenant_id)
                .one(self.conn())
                .await?
                .ok_or(ServiceError::NotFound("tenant"))?;
            let own_schema = crate::dedicated::schema_of(&tenant)?;
            crate::tenant_move::refuse_while_moving(self, tenant_id).await?;
            if own_schema.is_some() && !force {
                let members = tenant_users::Entity::find()
                    .filter(tenant_users::Column::TenantId.eq(tenant_id))
                    .count(self.conn())
                    .await?;
                if members > 0 {
                    return Err(ServiceError::Conflict(format!(
                        "the tenant still has {members} member(s): remove them first, or force"
                    )));
                }
            }
            // Shared tables, and the tenant's own schema: never another tenant's schema.
            let tables: Vec<_> = migration::audit::tenant_tables(self.conn())
                .await?
                .into_iter()
                .filter(|(schema, _)| {
                    TenantSchema::parse(schema).is_err()
                        || own_schema.as_ref().is_some_and(|s| s.as_str() == schema)
                })
                .collect();
            let order = parents_first(&tables, &foreign_key_edges(self.conn()).await?);
            let mut report = OffboardReport::default();

            let tenant_json = serde_json::to_value(&tenant).map_err(|e| {
                tracing::warn!(error = %e, "cannot serialise the tenant row");
                ServiceError::Unavailable("cannot serialise the tenant".into())
            })?;
            write_line(out, "tenancy.tenants", tenant_json)?;
            report.exported.push(("tenancy.tenants".into(), 1));

            for (schema, table) in &order {
                let name = format!("{schema}.{table}");
                let rows = self
                    .conn()
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!(
                            "SELECT to_jsonb(t) FROM {} t WHERE t.tenant_id = $1 ORDER BY 1",
                            qualified(schema, table)
                        ),
                        [Value::from(tenant_id)],
                    ))
                    .await?;
                let mut count = 0u64;
                for row in rows {
                    write_line(out, &name, row.try_get_by_index::<serde_json::Value>(0)?)?;
                    count += 1;
                }
                report.exported.push((name, count));
            }
            out.flush().map_err(|error| {
                tracing::warn!(%error, "flushing the offboarding export failed");
                ServiceError::Unavailable("writing the export failed".into())
            })?;

            if let Some(schema) = &own_schema {
                for (name, rows) in &report.exported {
                    if name.starts_with(&format!("{schema}.")) {
                        report.purged.push((name.clone(), *rows));
                    }
                }
                crate::dedicated::drop_schema(self, tenant_id).await?;
            }
            for (schema, table) in order.iter().rev() {
                if own_schema.as_ref().is_some_and(|s| s.as_str() == schema) {
                    continue;
                }
                let deleted = self
                    .conn()
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        format!(
                            "DELETE FROM {} WHERE tenant_id = $1",
                            qualified(schema, table)
                        ),
                        [Value::from(tenant_id)],
                    ))
                    .await?;
                report
                    .purged
                    .push((format!("{schema}.{table}"), deleted.rows_affected()));
            }
            let deleted = tenants::Entity::delete_by_id(tenant_id)
                .exec(self.conn())
                .await?;
            report
                .purged
                .push(("tenancy.tenants".into(), deleted.rows_affected));

            self.audit(
                "tenant.offboard",
                Some(tenant_id),
                serde_json::json!({
                    "slug": tenant.slug,
                    "exported": report.exported,
                    "purged": report.purged,
                }),
            )
            .await?;
            Ok(report)
        }
        .instrument(tracing::info_span!("tenants.offboard", tenant_id = %tenant_id))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["ab", "acme", "tech-startup", "0a", &"a".repeat(63)] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-ab", "Acme", "a_b", "a b", "ä-b", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<TenantSlug>("\"Bad\"").is_err());
    }

    #[test]
    fn orders_parents_first() {
        let t = |s: &str| ("s".to_owned(), s.to_owned());
        let tables = vec![t("tasks"), t("projects"), t("documents"), t("members")];
        let edges = vec![
            (t("tasks"), t("projects")),
            (t("documents"), t("projects")),
            (t("projects"), t("projects")),
            (t("tasks"), t("users")),
        ];
        let order = parents_first(&tables, &edges);
        let pos = |n: &str| order.iter().position(|x| x.1 == n);
        assert_eq!(order.len(), 4);
        assert!(pos("projects") < pos("tasks"));
        assert!(pos("projects") < pos("documents"));
    }

    #[test]
    fn emails() {
        assert!(check_email("alice@acme.com").is_ok());
        for bad in ["", "alice", "@acme.com", "alice@", "a b@c.d"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
