//! Builds an [`AdoptionPlan`] from a declaration and the live catalog.

use std::collections::BTreeSet;

use sea_orm::sea_query::{
    Alias, ConditionalStatement, Expr, ExprTrait, ForeignKeyAction, Index, IndexCreateStatement,
    OnConflict, Query,
};
use sea_orm::{ConnectionTrait, Statement};

use super::AdoptionError;
use super::catalog::{self, CatForeignKey, CatTable, CatUnique, Catalog};
use super::chains::{self, Tree};
use super::declaration::{Adoption, Phase, Selection, TenantRule};
use crate::backfill::{Backfill, KeyType, ParentValue};
use crate::ddl::{ColumnAlter, ConstraintAdd, ConstraintDrop, ConstraintKind, ViewSecurityInvoker};
use crate::dsl::{Grant, GrantObject, Privilege, RowLevelSecurity};
use crate::guards::Guard;
use crate::names::{
    APP_ROLE, DEFAULT_TENANT_ID, LEGACY_ROLE, SUPERADMIN_ROLE, TENANCY_SCHEMA, TENANT_COLUMN,
};
use crate::plan::{MigrationPlan, SqlStep, index_step, pg};
use crate::probes;
use crate::tables::t;
use crate::tenant_table::{TenantTable, current_tenant_id, default_tenant};

/// One table's part of the plan, for the report.
#[derive(Debug, Clone, Default)]
pub struct TableReport {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: i64,
    /// `PRIMARY KEY (id) -> (tenant_id, id)`.
    pub key_change: String,
    /// Foreign keys rewritten (composite) or kept (to global tables).
    pub foreign_keys: Vec<String>,
    /// Uniques widened.
    pub uniques: Vec<String>,
    /// How its rows get their tenant.
    pub tenant_from: String,
    /// Partitions covered with it.
    pub partitions: Vec<String>,
}

/// A run of steps: either each step on its own (resumable through its probe), or all of them in
/// one transaction, skipped as a whole when `done_when` holds.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Phase 1 or 2.
    pub phase: Phase,
    /// The steps.
    pub plan: MigrationPlan,
    /// Whether the whole segment runs in one transaction.
    pub transactional: bool,
    /// A probe that says the (transactional) segment is already applied.
    pub done_when: Option<Statement>,
}

/// The result of planning: a report, blockers, warnings and the steps.
#[derive(Debug, Clone, Default)]
pub struct AdoptionPlan {
    /// The declaration planned.
    pub adoption: Option<Adoption>,
    /// The adopted tables, in the order they are processed.
    pub tables: Vec<String>,
    /// Per table.
    pub report: Vec<TableReport>,
    /// Why the plan is refused (empty: it may run).
    pub blockers: Vec<String>,
    /// What the user should know but does not make the result unsafe.
    pub warnings: Vec<String>,
    /// `(table, foreign key)`: references whose existing rows disagree with the followed
    /// tenant path; their composite form is added `NOT VALID` (enforced for new rows) and left
    /// for the user to `VALIDATE` once those rows are fixed.
    pub unvalidated: Vec<(String, String)>,
    /// The steps, in order.
    pub segments: Vec<Segment>,
    /// Phase 1 steps, concatenated (for rendering).
    pub phase1: MigrationPlan,
    /// Phase 2 steps, concatenated (for rendering).
    pub phase2: MigrationPlan,
}

impl AdoptionPlan {
    /// The report and the exact SQL, as `adopt --plan` prints it.
    pub fn render(&self, phase: Phase) -> Vec<String> {
        let mut out = Vec::new();
        for r in &self.report {
            out.push(format!("-- table {} ({} rows)", r.table, r.rows));
            out.push(format!("--   key: {}", r.key_change));
            out.push(format!("--   tenant: {}", r.tenant_from));
            for f in &r.foreign_keys {
                out.push(format!("--   foreign key: {f}"));
            }
            for u in &r.uniques {
                out.push(format!("--   unique: {u}"));
            }
            if !r.partitions.is_empty() {
                out.push(format!(
                    "--   partitions (RLS and policies too): {}",
                    r.partitions.join(", ")
                ));
            }
        }
        for w in &self.warnings {
            out.push(format!("-- WARNING: {w}"));
        }
        for b in &self.blockers {
            out.push(format!("-- BLOCKER: {b}"));
        }
        if !self.blockers.is_empty() {
            out.push("-- refused: nothing will be changed until every blocker is resolved".into());
        }
        // The same frame `migration plan` prints (what squawk lints): the runner's session
        // setting, then each segment as it runs, transactional ones inside BEGIN/COMMIT.
        out.push("-- squawk-ignore-file require-statement-timeout -- no statement_timeout on purpose: VALIDATE, concurrent index builds and backfill batches must finish; lock_timeout bounds how long others wait on us".into());
        out.push("-- set by the runner for the whole session (TENANTRY_LOCK_TIMEOUT):".into());
        out.push(format!(
            "SET lock_timeout = '{}';",
            crate::run::lock_timeout().replace('\'', "''")
        ));
        for seg in &self.segments {
            if phase != Phase::All && seg.phase != phase {
                continue;
            }
            if seg.transactional {
                out.push("BEGIN;".into());
                out.extend(seg.plan.render_up_in(true));
                out.push("COMMIT;".into());
            } else {
                out.extend(seg.plan.render_up_in(false));
            }
        }
        out
    }

    /// Every `down` statement of `phase`, in the order `down` runs them.
    pub fn down_statements(&self, phase: Phase) -> Vec<String> {
        let mut out = Vec::new();
        for seg in self.segments.iter().rev() {
            if phase == Phase::All || seg.phase == phase {
                for step in seg.plan.steps().iter().rev() {
                    if let crate::plan::Step::Sql(sql) = step {
                        out.extend(sql.down.iter().map(|s| s.to_string()));
                    }
                }
            }
        }
        out
    }
}

fn on_delete(code: &str) -> Option<ForeignKeyAction> {
    Some(match code {
        "c" => ForeignKeyAction::Cascade,
        "r" => ForeignKeyAction::Restrict,
        "n" => ForeignKeyAction::SetNull,
        "d" => ForeignKeyAction::SetDefault,
        _ => ForeignKeyAction::NoAction,
    })
}

fn key_type(ty: &str) -> Option<KeyType> {
    match ty {
        "uuid" => Some(KeyType::Uuid),
        "bigint" => Some(KeyType::BigInt),
        "integer" => Some(KeyType::Int),
        _ => None,
    }
}

fn short(name: String) -> String {
    crate::guards::truncate_ident(&name)
}

/// The legacy key without `tenant_id` (a resumed run finds it already swapped).
fn legacy_key(table: &CatTable) -> Vec<String> {
    table
        .primary_key
        .as_ref()
        .map(|(_, cols)| {
            cols.iter()
                .filter(|c| *c != TENANT_COLUMN)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// `md5('tenantry:<schema>.<root>:' || key)::uuid`: the tenant a root row becomes, the same on
/// every run (so an interrupted adoption resumes to the same tenants).
fn root_tenant_id(schema: &str, root: &str, key: &str) -> Expr {
    Expr::cust_with_values(
        format!("md5($1 || {}::text)::uuid", crate::guards::quote_ident(key)),
        [format!("tenantry:{schema}.{root}:")],
    )
}

/// Plans `adoption` against the live catalog. Read-only: nothing is changed. Refused
/// ([`AdoptionError::NoCore`]) when the database has no tenancy core.
pub async fn plan<C: ConnectionTrait>(
    db: &C,
    adoption: &Adoption,
) -> Result<AdoptionPlan, AdoptionError> {
    plan_checked(db, adoption, true).await
}

/// Plans `adoption` on a database whose tenancy core is not installed yet, for a caller that
/// installs it before applying the plan (`migration adopt` on a bare database). Read-only.
pub async fn plan_before_core<C: ConnectionTrait>(
    db: &C,
    adoption: &Adoption,
) -> Result<AdoptionPlan, AdoptionError> {
    plan_checked(db, adoption, false).await
}

async fn plan_checked<C: ConnectionTrait>(
    db: &C,
    adoption: &Adoption,
    require_core: bool,
) -> Result<AdoptionPlan, AdoptionError> {
    let schema = adoption.schema.as_str();
    let cat = catalog::read(db, schema).await?;
    if !cat.schema_exists {
        return Err(AdoptionError::UnknownSchema(schema.into()));
    }
    let names: BTreeSet<String> = cat.tables.iter().map(|t| t.name.clone()).collect();
    let mut named: Vec<String> = match &adoption.selection {
        Selection::Only(t) | Selection::AllExcept(t) => t.clone(),
    };
    if let TenantRule::Root { table, .. } = &adoption.rule {
        named.push(table.clone());
    }
    named.extend(adoption.tenant_paths.iter().map(|(t, _)| t.clone()));
    let missing: Vec<String> = named
        .into_iter()
        .filter(|t| !names.contains(t))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        return Err(AdoptionError::UnknownTables {
            schema: schema.into(),
            tables: missing,
        });
    }
    if require_core && !cat.has_core {
        return Err(AdoptionError::NoCore);
    }
    let adopted: BTreeSet<String> = match &adoption.selection {
        Selection::Only(t) => t.iter().cloned().collect(),
        Selection::AllExcept(global) => names
            .iter()
            .filter(|n| !global.contains(n))
            .cloned()
            .collect(),
    };
    let mut out = AdoptionPlan {
        adoption: Some(adoption.clone()),
        ..Default::default()
    };
    check_blockers(&cat, schema, &adopted, &mut out);
    let tree = match &adoption.rule {
        TenantRule::DefaultTenant => None,
        TenantRule::Root { table, name_column } => {
            let tree = chains::tree(
                schema,
                &adopted,
                table,
                &cat.foreign_keys,
                &adoption.tenant_paths,
            );
            if !adopted.contains(table) {
                out.blockers.push(format!(
                    "the tenant root {table} must be one of the adopted tables"
                ));
            }
            check_root(
                db,
                &cat,
                schema,
                table,
                name_column,
                &tree,
                adoption,
                &mut out,
            )
            .await?;
            Some(tree)
        }
    };
    // Processing order: the root, then parents before children, then the rest.
    let mut order: Vec<String> = Vec::new();
    if let (Some(tree), TenantRule::Root { table, .. }) = (&tree, &adoption.rule) {
        order.push(table.clone());
        order.extend(tree.order.iter().cloned());
    }
    for t in &adopted {
        if !order.contains(t) {
            order.push(t.clone());
        }
    }
    out.tables = order.clone();
    let tables: Vec<&CatTable> = order
        .iter()
        .filter_map(|n| cat.tables.iter().find(|t| &t.name == n))
        .collect();
    for table in &tables {
        let key = legacy_key(table);
        if let Some(first) = key.first()
            && key_type(table.column_type(first).unwrap_or_default()).is_none()
        {
            out.blockers.push(format!(
                "{schema}.{}: key column {first} is {}; the backfill walks uuid, integer or bigint keys \
                 (add such a key, or adopt this table by hand)",
                table.name,
                table.column_type(first).unwrap_or_default()
            ));
        }
    }
    if !out.blockers.is_empty() {
        return Ok(out);
    }
    build_phase1(&cat, schema, &tables, adoption, tree.as_ref(), &mut out);
    build_phase2(&cat, schema, &adopted, &tables, &mut out);
    let partitioned: Vec<String> = tables
        .iter()
        .filter(|t| t.partitioned)
        .map(|t| format!("{schema}.{}", t.name))
        .collect();
    for seg in &mut out.segments {
        super::lint::annotate(&mut seg.plan, &partitioned);
    }
    for seg in &out.segments {
        match seg.phase {
            Phase::Columns => out.phase1.extend(seg.plan.clone()),
            _ => out.phase2.extend(seg.plan.clone()),
        };
    }
    Ok(out)
}

fn check_blockers(cat: &Catalog, schema: &str, adopted: &BTreeSet<String>, out: &mut AdoptionPlan) {
    for t in cat.tables.iter().filter(|t| adopted.contains(&t.name)) {
        if t.primary_key.is_none() {
            out.blockers.push(format!(
                "{schema}.{}: no primary key; add one (e.g. `id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY`) \
                 so rows can be keyed per tenant",
                t.name
            ));
        }
        if let Some(ty) = t.column_type(TENANT_COLUMN)
            && ty != "uuid"
        {
            out.blockers.push(format!(
                "{schema}.{}: a tenant_id column of type {ty} already exists; rename it (or convert it to \
                 uuid referencing tenancy.tenants) before adopting",
                t.name
            ));
        }
    }
    for v in &cat.views {
        let over: Vec<&String> = v.reads.iter().filter(|r| adopted.contains(*r)).collect();
        if over.is_empty() {
            continue;
        }
        if v.materialized {
            out.blockers.push(format!(
                "materialized view {}.{} holds every tenant's rows of {}; drop it or replace it by a \
                 view (or one materialized view per tenant)",
                v.schema,
                v.name,
                over.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for f in &cat.foreign_keys {
        let from_global = !(f.schema == schema && adopted.contains(&f.table));
        if from_global && f.ref_schema == schema && adopted.contains(&f.ref_table) {
            out.blockers.push(format!(
                "{}.{} (global) references the adopted {}.{} through {}: a global row would point into one \
                 tenant; adopt {} too, or drop that foreign key",
                f.schema, f.table, f.ref_schema, f.ref_table, f.name, f.table
            ));
        }
        if !from_global
            && f.ref_schema == schema
            && cat
                .tables
                .iter()
                .any(|t| t.name == f.ref_table && t.partitioned)
        {
            out.blockers.push(format!(
                "{schema}.{}: foreign key {} references the partitioned {}; its key cannot be rebuilt \
                 online under the reference: adopt this pair by hand",
                f.table, f.name, f.ref_table
            ));
        }
        if !from_global
            && f.ref_schema == schema
            && adopted.contains(&f.ref_table)
            && f.on_delete == "n"
            && f.columns.first().map(String::as_str) != Some(TENANT_COLUMN)
        {
            out.blockers.push(format!(
                "{schema}.{}: foreign key {} is ON DELETE SET NULL, which on a composite key would null \
                 tenant_id; change it to NO ACTION, CASCADE or RESTRICT first",
                f.table, f.name
            ));
        }
    }
    for func in &cat.functions {
        match &func.trigger {
            None => {
                // The whole definition (a comment naming a table only errs on the safe side) and
                // what `pg_depend` records for SQL-standard bodies.
                // Names are compared qualified: `other.orders` is not the adopted `orders`; an
                // unqualified `orders` may be (conservatively, whatever its search_path).
                let words = catalog::words(&func.body);
                let reads: Vec<&String> = adopted
                    .iter()
                    .filter(|t| {
                        let qualified = format!("{schema}.{t}");
                        words
                            .iter()
                            .any(|w| *w == qualified || (!w.contains('.') && w == *t))
                            || func.depends.contains(&qualified)
                    })
                    .collect();
                if let Some(opaque) = definer_opaque(func, &cat.user_functions) {
                    out.blockers.push(format!(
                        "SECURITY DEFINER function {} {opaque}: what it reads cannot be seen, and it \
                         would bypass row level security on the adopted tables; make it SECURITY INVOKER, \
                         or make it check the tenant and exclude it by hand",
                        func.name
                    ));
                }
                if !reads.is_empty() {
                    out.blockers.push(format!(
                        "SECURITY DEFINER function {} reads {}: it would bypass row level security; make it \
                         SECURITY INVOKER, or make it check the tenant and exclude it by hand",
                        func.name,
                        reads.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Some((table, trigger)) if adopted.contains(table) => {
                let own = Target {
                    schema,
                    table,
                    search_path: func.search_path.as_deref(),
                    public_relations: &cat.public_relations,
                };
                if let Some(write) =
                    trigger_write(&func.body, &own, &func.name, &cat.user_functions)
                {
                    out.blockers.push(format!(
                        "trigger {trigger} on {schema}.{table} (function {}) {write}: the row it writes \
                         would not carry the tenant; make the function set tenant_id (then exclude it by hand) or \
                         drop the trigger",
                        func.name
                    ));
                }
            }
            Some(_) => {}
        }
    }
}

/// What a trigger function on `table` does that may write elsewhere, conservatively: an
/// `INSERT`/`UPDATE`/`DELETE`/`MERGE` of another table, any `EXECUTE` (dynamic SQL, which cannot
/// be read), or a call of a function outside the catalog (which may write). Comments and string
/// literals are removed first.
/// What a SECURITY DEFINER function does that hides what it reads, conservatively: any
/// `EXECUTE` (dynamic SQL: `'SELECT ... FROM shop.ord' || 'ers'`), or a call of a function
/// outside `pg_catalog` and Tenantry's schema (which may read anything). Its code (`prosrc`, or
/// the whole definition for a SQL-standard body) without comments and string literals.
fn definer_opaque(func: &catalog::CatFunction, user_functions: &[String]) -> Option<String> {
    let code = catalog::strip_comments_and_strings(if func.source.trim().is_empty() {
        &func.body
    } else {
        &func.source
    });
    if catalog::words(&code).iter().any(|w| w == "execute") {
        return Some("runs dynamic SQL (EXECUTE)".into());
    }
    let own = catalog::base_name(&func.name).to_lowercase();
    catalog::calls(&code)
        .into_iter()
        .find(|c| *c != own && user_functions.contains(c))
        .map(|c| format!("calls the function {c}"))
}

/// The table a trigger fires on, and how its function resolves unqualified names.
struct Target<'a> {
    schema: &'a str,
    table: &'a str,
    /// The function's own `SET search_path`, if it has one.
    search_path: Option<&'a [String]>,
    /// Relations of `public`, where an unqualified name may also resolve.
    public_relations: &'a [String],
}

impl Target<'_> {
    /// Whether `name` (as written, lowercase, maybe qualified) is surely the trigger's own table.
    /// Unqualified: the first schema of the function's `search_path` (`pg_catalog` and
    /// `pg_temp` aside; `$user` could be any schema, so it is not the table), else the adopted
    /// schema, unless `public` has a relation of that name too (the caller's search_path decides).
    fn is_own(&self, name: &str) -> bool {
        match name.rsplit_once('.') {
            Some((s, n)) => s == self.schema && n == self.table,
            None if name != self.table => false,
            None => match self.search_path {
                Some(path) => {
                    path.iter()
                        .find(|s| !matches!(s.as_str(), "pg_catalog" | "pg_temp"))
                        .map(String::as_str)
                        == Some(self.schema)
                }
                None => self.schema == "public" || !self.public_relations.iter().any(|r| r == name),
            },
        }
    }
}

fn trigger_write(
    body: &str,
    own: &Target<'_>,
    own_name: &str,
    user_functions: &[String],
) -> Option<String> {
    let code = catalog::strip_comments_and_strings(body);
    let words = catalog::words(&code);
    let target_after = |i: usize| -> Option<&String> {
        words[i..]
            .iter()
            .find(|w| !matches!(w.as_str(), "only" | "into" | "from"))
    };
    for (i, w) in words.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| words[p].as_str());
        let target = match w.as_str() {
            "insert" | "merge" if words.get(i + 1).map(String::as_str) == Some("into") => {
                target_after(i + 1)
            }
            "delete" if words.get(i + 1).map(String::as_str) == Some("from") => target_after(i + 1),
            // Not `ON CONFLICT DO UPDATE SET` or a MERGE's `THEN UPDATE SET` (the statement's
            // own target is checked), `FOR [NO KEY] UPDATE`, or `UPDATE OF` in a column list.
            "update"
                if !matches!(previous, Some("for" | "key"))
                    && !matches!(
                        words.get(i + 1).map(String::as_str),
                        Some("of" | "set") | None
                    ) =>
            {
                target_after(i + 1)
            }
            "execute" => {
                return Some("runs dynamic SQL (EXECUTE), which may write anywhere".into());
            }
            _ => None,
        };
        if let Some(target) = target
            && !own.is_own(target)
        {
            return Some(format!("writes to {target}"));
        }
    }
    let own = catalog::base_name(own_name).to_lowercase();
    catalog::calls(&code)
        .into_iter()
        .find(|c| *c != own && user_functions.contains(c))
        .map(|c| format!("calls the function {c}, which may write to another table"))
}

#[allow(clippy::too_many_arguments)]
async fn check_root<C: ConnectionTrait>(
    db: &C,
    cat: &Catalog,
    schema: &str,
    root: &str,
    name_column: &str,
    tree: &Tree,
    adoption: &Adoption,
    out: &mut AdoptionPlan,
) -> Result<(), AdoptionError> {
    out.blockers.extend(tree.problems.iter().cloned());
    let Some(root_table) = cat.tables.iter().find(|t| t.name == root) else {
        return Ok(());
    };
    let key = legacy_key(root_table);
    let [root_key] = key.as_slice() else {
        out.blockers.push(format!(
            "the tenant root {schema}.{root} needs a single-column primary key"
        ));
        return Ok(());
    };
    if root_table.column_type(name_column).is_none() {
        out.blockers.push(format!(
            "the tenant root {schema}.{root} has no column {name_column} (pick one with --tenant-name)"
        ));
        return Ok(());
    }
    let fix = "pass --orphans-to-default to send them to the default tenant, or fix the data";
    let nulls = db
        .query_one_raw(pg(&Query::select()
            .expr(Expr::cust("count(*)"))
            .from(t(schema, Alias::new(root)))
            .and_where(Expr::col(Alias::new(name_column)).is_null())
            .to_owned()))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    if nulls > 0 {
        let msg =
            format!("{schema}.{root}: {nulls} rows have a NULL {name_column} (no tenant name)");
        if adoption.orphans_to_default {
            out.warnings
                .push(format!("{msg}; they go to the default tenant"));
        } else {
            out.blockers.push(format!("{msg}; {fix}"));
        }
    }
    for table in &tree.order {
        let orphans = chains::orphans(db, schema, tree, table, root_key).await?;
        if orphans > 0 {
            let msg = format!("{schema}.{table}: {orphans} rows have no path to a {root} row");
            if adoption.orphans_to_default {
                out.warnings
                    .push(format!("{msg}; they go to the default tenant"));
            } else {
                out.blockers.push(format!("{msg}; {fix}"));
            }
        }
        let chosen = &tree.chosen[table].fk;
        for other in tree.alternatives.get(table).into_iter().flatten() {
            let n = chains::disagreements(db, schema, tree, table, other, root_key).await?;
            if n == 0 {
                continue;
            }
            let msg = format!(
                "{schema}.{table}: {n} rows where the path via {} and the path via {} lead to different {root} rows",
                chosen.columns.join(","),
                other.columns.join(",")
            );
            if adoption.tenant_paths.iter().any(|(t, _)| t == table) {
                out.warnings.push(format!(
                    "{msg}; following --tenant-path {table}.{}: the composite form of {} stays NOT \
                     VALID (checked for new rows) until those rows are fixed and it is validated",
                    chosen.columns.join(","),
                    other.name
                ));
                out.unvalidated.push((table.clone(), other.name.clone()));
            } else {
                out.blockers.push(format!(
                    "{msg}; pick one with --tenant-path {table}.{} or --tenant-path {table}.{}",
                    chosen.columns.join(","),
                    other.columns.join(",")
                ));
            }
        }
    }
    for table in &tree.unconnected {
        let rows = cat
            .tables
            .iter()
            .find(|t| &t.name == table)
            .map_or(0, |t| t.rows);
        if rows == 0 {
            continue;
        }
        let msg = format!("{schema}.{table}: no foreign-key path to {root} ({rows} rows)");
        if adoption.orphans_to_default {
            out.warnings
                .push(format!("{msg}; its rows go to the default tenant"));
        } else {
            out.blockers.push(format!("{msg}; {fix}"));
        }
    }
    Ok(())
}

fn build_phase1(
    cat: &Catalog,
    schema: &str,
    tables: &[&CatTable],
    adoption: &Adoption,
    tree: Option<&Tree>,
    out: &mut AdoptionPlan,
) {
    let mut plan = MigrationPlan::new();
    plan.guard(Guard::no_long_transactions());
    let default = uuid::Uuid::parse_str(DEFAULT_TENANT_ID).unwrap_or_default();
    for table in tables {
        let name = table.name.as_str();
        let tt = TenantTable::new(schema, name);
        plan.push(tt.nullable_column_step());
        if tree.is_none() {
            let d = ColumnAlter::set_default(schema, name, TENANT_COLUMN, default_tenant());
            plan.step(
                format!("{schema}.{name}: new rows default to the default tenant"),
                &d,
                &ColumnAlter::drop_default(schema, name, TENANT_COLUMN),
            );
        }
    }
    let walk = |table: &CatTable, b: Backfill| {
        let key = legacy_key(table);
        match key.first() {
            Some(k) => {
                let ty =
                    key_type(table.column_type(k).unwrap_or_default()).unwrap_or(KeyType::Uuid);
                b.key(k, ty)
            }
            None => b,
        }
    };
    let mut report: Vec<TableReport> = tables
        .iter()
        .map(|t| TableReport {
            table: format!("{schema}.{}", t.name),
            rows: t.rows,
            partitions: t.partitions.clone(),
            tenant_from: "the default tenant".into(),
            ..Default::default()
        })
        .collect();
    match (&adoption.rule, tree) {
        (
            TenantRule::Root {
                table: root,
                name_column,
            },
            Some(tree),
        ) => {
            let Some(root_table) = tables.iter().find(|t| &t.name == root) else {
                return;
            };
            let root_key = legacy_key(root_table)
                .into_iter()
                .next()
                .unwrap_or_default();
            let id = root_tenant_id(schema, root, &root_key);
            let name_text = Expr::col(Alias::new(name_column)).cast_as("text");
            let slug = Expr::cust_with_exprs(
                "coalesce(nullif(left(trim(both '-' from regexp_replace(lower($1), '[^a-z0-9]+', '-', 'g')), 40), ''), 'tenant') \
                 || '-' || left(replace($2::text, '-', ''), 8)",
                [name_text.clone(), id.clone()],
            );
            let insert = Query::insert()
                .into_table(t(TENANCY_SCHEMA, Alias::new("tenants")))
                .columns([Alias::new("id"), Alias::new("name"), Alias::new("slug")])
                .select_from(
                    Query::select()
                        .expr(id.clone())
                        .expr(name_text)
                        .expr(slug)
                        .from(t(schema, Alias::new(root)))
                        .and_where(Expr::col(Alias::new(name_column)).is_not_null())
                        .to_owned(),
                )
                .map(|q| {
                    q.on_conflict(OnConflict::column(Alias::new("id")).do_nothing().to_owned())
                        .to_owned()
                });
            if let Ok(insert) = insert {
                // tenants has FORCE row level security (the owner sees no row without a
                // context): lifted for this one insert, in the same short transaction.
                let tenants = t(TENANCY_SCHEMA, Alias::new("tenants"));
                plan.push(SqlStep {
                    label: format!(
                        "every {schema}.{root} row becomes a tenant named from {name_column}"
                    ),
                    up: vec![
                        pg(&RowLevelSecurity::no_force(tenants.clone())),
                        pg(&insert),
                        pg(&RowLevelSecurity::force(tenants)),
                    ],
                    down: vec![],
                    done_when: None,
                    transactional: true,
                });
            }
            let own = Query::update()
                .table(t(schema, Alias::new(root)))
                .value(Alias::new(TENANT_COLUMN), id)
                .and_where(Expr::col(Alias::new(TENANT_COLUMN)).is_null())
                .and_where(Expr::col(Alias::new(name_column)).is_not_null())
                .to_owned();
            plan.forward_only(
                format!("{schema}.{root}: each row belongs to the tenant it became"),
                &own,
            );
            if let Some(r) = report
                .iter_mut()
                .find(|r| r.table == format!("{schema}.{root}"))
            {
                r.tenant_from =
                    format!("each row becomes its own tenant, named from {name_column}");
            }
            for child in &tree.order {
                let Some(table) = tables.iter().find(|t| &t.name == child) else {
                    continue;
                };
                let fk = &tree.chosen[child].fk;
                let parent = ParentValue {
                    schema: schema.into(),
                    table: fk.ref_table.clone(),
                    value_column: TENANT_COLUMN.into(),
                    on: fk
                        .columns
                        .iter()
                        .cloned()
                        .zip(fk.ref_columns.iter().cloned())
                        .collect(),
                };
                plan.backfill(walk(
                    table,
                    Backfill::from_parent(schema, child, TENANT_COLUMN, parent),
                ));
                if let Some(r) = report
                    .iter_mut()
                    .find(|r| r.table == format!("{schema}.{child}"))
                {
                    r.tenant_from = format!(
                        "inherited from {} through {} ({})",
                        fk.ref_table,
                        fk.name,
                        fk.columns.join(", ")
                    );
                }
            }
            if adoption.orphans_to_default {
                for table in tables {
                    plan.backfill(walk(
                        table,
                        Backfill::new(schema, &table.name, TENANT_COLUMN, default),
                    ));
                }
            }
        }
        _ => {
            for table in tables {
                plan.backfill(walk(
                    table,
                    Backfill::new(schema, &table.name, TENANT_COLUMN, default),
                ));
            }
        }
    }
    // The reference to tenants after the backfill (as m0005 does): during it, its check would
    // run once per backfilled row; NOT VALID then VALIDATE checks every row in one scan.
    for table in tables {
        plan.extend(TenantTable::new(schema, &table.name).tenant_fk_plan(table.partitioned));
    }
    plan.guard(Guard::KeepTenantAssignments {
        tables: tables
            .iter()
            .map(|t| (schema.to_owned(), t.name.clone()))
            .collect(),
    });
    let _ = cat;
    out.report = report;
    out.segments.push(Segment {
        phase: Phase::Columns,
        plan,
        transactional: false,
        done_when: None,
    });
}

fn report_of<'a>(
    out: &'a mut AdoptionPlan,
    schema: &str,
    table: &str,
) -> Option<&'a mut TableReport> {
    let name = format!("{schema}.{table}");
    out.report.iter_mut().find(|r| r.table == name)
}

/// A UNIQUE constraint or unique index widened to `(tenant_id, ...)`: the new index is built
/// into `build` (concurrently), the swap goes into `swaps`.
fn widen_unique(
    cat: &Catalog,
    schema: &str,
    u: &CatUnique,
    build_plan: &mut MigrationPlan,
    swaps: &mut MigrationPlan,
    out: &mut AdoptionPlan,
) {
    if u.keys.first().map(|k| k.trim_matches('"')) == Some(TENANT_COLUMN) {
        return;
    }
    let Some(table) = cat.tables.iter().find(|t| t.name == u.table) else {
        return;
    };
    let new_name = short(format!("{}_tenant", u.index));
    let build = widened_index(schema, u, &new_name, true, table);
    let widened_probe = probes::index_leads_with(
        schema,
        u.constraint.as_deref().unwrap_or(&new_name),
        TENANT_COLUMN,
    );
    let mut step = index_step(
        format!(
            "{schema}.{}: unique {} widened to (tenant_id, {})",
            u.table,
            u.index,
            u.keys.join(", ")
        ),
        schema,
        &u.table,
        &new_name,
        build,
        !table.partitioned,
    );
    // Also done once the swap below has adopted the index under the constraint's name.
    step.done_when = step
        .done_when
        .map(|built| probes::either(built, widened_probe.clone()));
    build_plan.push(step);
    match &u.constraint {
        Some(c) => {
            let old = ConstraintDrop::new(schema, &u.table, c);
            let adopt = ConstraintAdd::new(
                schema,
                &u.table,
                c,
                ConstraintKind::UniqueUsingIndex(new_name.clone()),
            );
            let legacy = ConstraintAdd::new(
                schema,
                &u.table,
                c,
                ConstraintKind::Unique(
                    u.keys
                        .iter()
                        .map(|k| k.trim_matches('"').to_owned())
                        .collect(),
                ),
            );
            swaps.push(SqlStep {
                label: format!(
                    "{schema}.{}: constraint {c} uses the widened index",
                    u.table
                ),
                up: vec![pg(&old), pg(&adopt)],
                down: vec![pg(&old), pg(&legacy)],
                done_when: Some(widened_probe),
                transactional: true,
            });
        }
        None => {
            let mut drop_old = Index::drop()
                .name(crate::plan::index_name_sql(&u.index))
                .table(t(schema, Alias::new(&u.table)))
                .if_exists()
                .to_owned();
            let mut rebuild = widened_index(schema, u, &u.index, false, table);
            if !table.partitioned {
                drop_old.concurrently();
                rebuild.concurrently();
            }
            swaps.push(SqlStep {
                label: format!(
                    "{schema}.{}: drop the tenant-blind unique index {}",
                    u.table, u.index
                ),
                up: vec![pg(&drop_old)],
                down: vec![pg(&rebuild)],
                done_when: Some(probes::index_absent(schema, &u.index)),
                transactional: table.partitioned,
            });
        }
    }
    if let Some(r) = report_of(out, schema, &u.table) {
        r.uniques.push(format!(
            "{} ({}{}) -> (tenant_id, {})",
            u.constraint.as_deref().unwrap_or(&u.index),
            u.keys.join(", "),
            u.predicate
                .as_ref()
                .map(|p| format!(" WHERE {p}"))
                .unwrap_or_default(),
            u.keys.join(", ")
        ));
    }
}

fn widened_index(
    schema: &str,
    u: &CatUnique,
    name: &str,
    with_tenant: bool,
    table: &CatTable,
) -> IndexCreateStatement {
    let mut idx = Index::create()
        .name(crate::plan::index_name_sql(name))
        .table(t(schema, Alias::new(&u.table)))
        .unique()
        .to_owned();
    if with_tenant {
        idx.col(Alias::new(TENANT_COLUMN));
    }
    for key in &u.keys {
        let plain = key.trim_matches('"');
        if table.column_type(plain).is_some() {
            idx.col(Alias::new(plain));
        } else {
            idx.col(Expr::cust(key.clone()));
        }
    }
    if let Some(pred) = &u.predicate {
        idx.and_where(Expr::cust(pred.clone()));
    }
    if !table.partitioned {
        idx.concurrently();
    }
    idx
}

fn build_phase2(
    cat: &Catalog,
    schema: &str,
    adopted: &BTreeSet<String>,
    tables: &[&CatTable],
    out: &mut AdoptionPlan,
) {
    // Order, so that every interruption leaves either the legacy or the tenant-inclusive form
    // of each key and reference in place: the NOT NULL column; the new unique indexes built
    // concurrently; the composite foreign keys (NOT VALID, then VALIDATE) on them; only then
    // the single-column foreign keys dropped, and the keys and uniques swapped.
    let mut plan = MigrationPlan::new();
    plan.guard(Guard::no_long_transactions());
    for table in tables {
        let tt = TenantTable::new(schema, &table.name);
        plan.extend(tt.enforce_column_plan());
        // The unchanged application inserts without naming tenant_id through the legacy role:
        // `row_tenant_id()` gives it the default tenant and everyone else the current one.
        let to_row =
            ColumnAlter::set_default(schema, &table.name, TENANT_COLUMN, tt.tenant_default());
        let to_current =
            ColumnAlter::set_default(schema, &table.name, TENANT_COLUMN, current_tenant_id());
        plan.step(
            format!(
                "{schema}.{}: a legacy login's rows default to the default tenant",
                table.name
            ),
            &to_row,
            &to_current,
        );
        plan.lint_ignore(
            &["prefer-robust-stmts"],
            "SET DEFAULT is idempotent: a rerun sets the same default",
        );
    }
    let inner: Vec<&CatForeignKey> = cat
        .foreign_keys
        .iter()
        .filter(|f| {
            f.schema == schema
                && adopted.contains(&f.table)
                && f.ref_schema == schema
                && adopted.contains(&f.ref_table)
                && f.columns.first().map(String::as_str) != Some(TENANT_COLUMN)
        })
        .collect();
    for f in &cat.foreign_keys {
        if f.schema == schema
            && adopted.contains(&f.table)
            && !(f.ref_schema == schema && adopted.contains(&f.ref_table))
            && let Some(r) = report_of(out, schema, &f.table)
        {
            r.foreign_keys.push(format!(
                "{} to {}.{} kept as it is (not tenant-scoped)",
                f.name, f.ref_schema, f.ref_table
            ));
        }
    }
    // Key swaps: the unique index now, the swap later.
    let mut swaps = MigrationPlan::new();
    for table in tables {
        let key = legacy_key(table);
        let Some((pkey, _)) = &table.primary_key else {
            continue;
        };
        let keys: Vec<&str> = key.iter().map(String::as_str).collect();
        let tt = TenantTable::new(schema, &table.name)
            .composite_key(&keys)
            .primary_key_name(pkey);
        let key_plan = tt.key_plan_with(!table.partitioned);
        for (i, step) in key_plan.steps().iter().enumerate() {
            if let crate::plan::Step::Sql(sql) = step {
                if i + 1 < key_plan.steps().len() {
                    plan.push(sql.clone());
                } else {
                    swaps.push(sql.clone());
                }
            }
        }
        if let Some(r) = report_of(out, schema, &table.name) {
            r.key_change = format!(
                "PRIMARY KEY ({k}) -> (tenant_id, {k}); a non-unique index keeps ({k}) fast",
                k = key.join(", ")
            );
        }
    }
    for u in cat.uniques.iter().filter(|u| adopted.contains(&u.table)) {
        widen_unique(cat, schema, u, &mut plan, &mut swaps, out);
    }
    let legacy_fk = |f: &CatForeignKey| {
        ConstraintAdd::new(
            schema,
            &f.table,
            &f.name,
            ConstraintKind::ForeignKey {
                columns: f.columns.clone(),
                ref_schema: f.ref_schema.clone(),
                ref_table: f.ref_table.clone(),
                ref_columns: f.ref_columns.clone(),
                on_delete: on_delete(&f.on_delete),
            },
        )
    };
    // `down` must drop the composite keys before swapping the primary keys back, and re-add the
    // single-column ones after: down-only steps placed around the swaps carry them.
    let mut composite_drops = Vec::new();
    let mut late = MigrationPlan::new();
    let mut legacy_adds = Vec::new();
    for f in &inner {
        let partitioned = cat
            .tables
            .iter()
            .any(|t| t.name == f.table && t.partitioned);
        let mut columns = vec![TENANT_COLUMN.to_owned()];
        columns.extend(f.columns.iter().cloned());
        let mut ref_columns = vec![TENANT_COLUMN.to_owned()];
        ref_columns.extend(f.ref_columns.iter().cloned());
        let name = short(format!("{}_{}_tenant_fkey", f.table, f.columns.join("_")));
        let fk = ConstraintAdd::new(
            schema,
            &f.table,
            &name,
            ConstraintKind::ForeignKey {
                columns,
                ref_schema: schema.into(),
                ref_table: f.ref_table.clone(),
                ref_columns,
                on_delete: on_delete(&f.on_delete),
            },
        );
        let fk = if partitioned { fk } else { fk.not_valid() };
        composite_drops.push(pg(&fk.reverse()));
        let unvalidated = out
            .unvalidated
            .iter()
            .any(|(t, n)| t == &f.table && n == &f.name);
        // A reference whose rows disagree with the followed path is added after the key swaps
        // (which re-check the references on the swapped keys), and never validated here.
        let add = SqlStep {
            label: format!("{schema}.{}: composite {name}", f.table),
            up: vec![pg(&fk)],
            down: vec![],
            done_when: Some(probes::constraint_exists(schema, &f.table, &name)),
            transactional: true,
        };
        if unvalidated {
            late.push(add);
        } else {
            plan.push(add);
        }
        if !partitioned && !unvalidated {
            plan.push(SqlStep {
                label: format!("{schema}.{}: VALIDATE {name}", f.table),
                up: vec![pg(&fk.validate())],
                down: vec![],
                done_when: Some(probes::constraint_validated(schema, &f.table, &name)),
                transactional: true,
            });
        }
        if let Some(r) = report_of(out, schema, &f.table) {
            r.foreign_keys.push(format!(
                "{} ({}) -> {} becomes {name} (tenant_id, {})",
                f.name,
                f.columns.join(", "),
                f.ref_table,
                f.columns.join(", ")
            ));
        }
    }
    for f in &inner {
        let legacy = legacy_fk(f);
        legacy_adds.push(pg(&legacy));
        plan.push(SqlStep {
            label: format!("{schema}.{}: drop single-column {}", f.table, f.name),
            up: vec![pg(&legacy.reverse())],
            down: vec![],
            done_when: Some(probes::constraint_absent(schema, &f.table, &f.name)),
            transactional: true,
        });
    }
    plan.push(SqlStep {
        label: "(down only) re-add the single-column foreign keys".into(),
        up: vec![],
        down: legacy_adds,
        done_when: None,
        transactional: true,
    });
    plan.extend(swaps);
    plan.extend(late);
    plan.push(SqlStep {
        label: "(down only) drop the composite foreign keys".into(),
        up: vec![],
        down: composite_drops,
        done_when: None,
        transactional: true,
    });
    for table in tables {
        // The unchanged application's `WHERE id = $1` stays indexed: a NON-unique index leading
        // with the legacy key (a tenant-blind UNIQUE would leak existence across tenants).
        let key = legacy_key(table);
        let name = short(format!("{}_legacy_key_idx", table.name));
        let mut idx = Index::create();
        for k in &key {
            idx.col(Alias::new(k));
        }
        plan.push(index_step(
            format!(
                "{schema}.{}: non-unique index on the legacy key ({})",
                table.name,
                key.join(", ")
            ),
            schema,
            &table.name,
            &name,
            idx,
            !table.partitioned,
        ));
    }
    for table in tables {
        let mut tt = TenantTable::new(schema, &table.name);
        if table.column_type("created_at").is_none() {
            tt = tt.without_created_at();
        }
        plan.extend(tt.index_plan_with(!table.partitioned));
    }
    out.segments.push(Segment {
        phase: Phase::Enforce,
        plan,
        transactional: false,
        done_when: None,
    });
    // Row level security, policies and grants: one transaction per table (and partition).
    for table in tables {
        let mut names = vec![table.name.clone()];
        names.extend(table.partitions.iter().cloned());
        for name in names {
            let security = TenantTable::new(schema, &name).security_plan();
            out.segments.push(Segment {
                phase: Phase::Enforce,
                plan: security,
                transactional: true,
                done_when: Some(probes::policy_exists(
                    schema,
                    &name,
                    &format!("{name}_superadmin_all"),
                )),
            });
        }
    }
    // The app, superadmin and legacy roles reach the schema, and the sequences of serial keys
    // (the unchanged application keeps inserting through the legacy role).
    let mut access = MigrationPlan::new();
    if !cat.app_has_usage {
        for role in [APP_ROLE, SUPERADMIN_ROLE, LEGACY_ROLE] {
            let usage = Grant::privileges([Privilege::Usage])
                .on(GrantObject::schema(Alias::new(schema)))
                .to(role)
                .to_owned();
            access.step(
                format!("grant USAGE on schema {schema} to {role}"),
                &usage,
                &usage.reverse(),
            );
        }
    }
    for (table, sequence) in cat.sequences.iter().filter(|(t, _)| adopted.contains(t)) {
        for role in [APP_ROLE, SUPERADMIN_ROLE, LEGACY_ROLE] {
            let usage = Grant::privileges([Privilege::Usage])
                .on(GrantObject::sequence(t(schema, Alias::new(sequence))))
                .to(role)
                .to_owned();
            access.step(
                format!("grant USAGE on sequence {schema}.{sequence} ({table}) to {role}"),
                &usage,
                &usage.reverse(),
            );
        }
    }
    out.segments.push(Segment {
        phase: Phase::Enforce,
        plan: access,
        transactional: true,
        done_when: None,
    });
    let mut views = MigrationPlan::new();
    for v in cat
        .views
        .iter()
        .filter(|v| !v.materialized && v.reads.iter().any(|r| adopted.contains(r)))
    {
        let on = ViewSecurityInvoker::on(&v.schema, &v.name);
        views.step(
            format!("view {}.{}: security_invoker = on (the querying role's row level security applies)", v.schema, v.name),
            &on,
            &on.reverse(),
        );
    }
    out.segments.push(Segment {
        phase: Phase::Enforce,
        plan: views,
        transactional: true,
        done_when: None,
    });
    let mut last = MigrationPlan::new();
    last.guard(Guard::KeepTenantAssignments {
        tables: tables
            .iter()
            .map(|t| (schema.to_owned(), t.name.clone()))
            .collect(),
    });
    out.segments.push(Segment {
        phase: Phase::Enforce,
        plan: last,
        transactional: false,
        done_when: None,
    });
}
