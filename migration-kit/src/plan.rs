//! Migrations as data: a migration is a [`MigrationPlan`], a list of [`Step`]s that `up`
//! executes, `down` undoes in reverse order, and `plan` renders as SQL without touching data.

use sea_orm::sea_query::{Alias, Index, IndexCreateStatement};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, StatementBuilder};
use sea_orm_migration::SchemaManager;

use crate::backfill::Backfill;
use crate::guards::Guard;
use crate::probes;
use crate::tables::t;

/// Renders any sea-query or tenancy-DSL statement for PostgreSQL.
pub fn pg<S: StatementBuilder + ?Sized>(stmt: &S) -> Statement {
    stmt.build(&DbBackend::Postgres)
}

/// The step that builds index `name` on `schema.table` (`build` holds its columns, `UNIQUE`,
/// `INCLUDE` and `WHERE`; the name, the table and `CONCURRENTLY` are set here), concurrently
/// (for a migration that runs outside a transaction) or in the migration's transaction.
///
/// * A concurrent build killed halfway leaves an invalid index behind, so a concurrent `up`
///   drops an index of that name on that table first and builds again (a build in a
///   transaction leaves nothing behind); `down` drops it.
/// * The step is skipped once a valid index of that name is on that table.
/// * Before dropping anything, `up` stops with an error naming the relation when the name is
///   taken in `schema` by anything but an index on `schema.table` (a user's index on another
///   table, a table, a view): the drop would destroy it, and an index elsewhere is not this one.
/// * `name` may be anything PostgreSQL takes: one longer than 63 bytes is cut as the server cuts
///   it ([`crate::guards::truncate_ident`]), so the probe and the guard look for the index the
///   server builds; a `"` in it is escaped (sea-query writes an index's name as it is).
pub fn index_step(
    label: String,
    schema: &str,
    table: &str,
    name: &str,
    mut build: IndexCreateStatement,
    concurrently: bool,
) -> SqlStep {
    let name = &crate::guards::truncate_ident(name);
    build
        .name(index_name_sql(name))
        .table(t(schema, Alias::new(table)));
    let mut drop = Index::drop()
        .name(index_name_sql(name))
        .table(t(schema, Alias::new(table)))
        .if_exists()
        .to_owned();
    let mut up = vec![index_name_free(schema, table, name)];
    if concurrently {
        build.concurrently();
        drop.concurrently();
        up.push(pg(&drop));
    }
    up.push(pg(&build));
    SqlStep {
        label,
        up,
        down: vec![pg(&drop)],
        done_when: Some(probes::index_valid(schema, table, name)),
        transactional: !concurrently,
    }
}

/// An index name as sea-query's `Index::create().name(..)` and `Index::drop().name(..)` need it.
/// sea-query 1.0 quotes and escapes table and column names, but writes an index's (and a
/// foreign key's) name between double quotes as it is given: a name from a user's catalog with
/// a `"` in it would end the identifier early and splice the rest into the statement. Every
/// index name the plans build or drop goes through this (`"` doubled).
pub(crate) fn index_name_sql(name: &str) -> String {
    name.replace('"', "\"\"")
}

/// [`index_step`], built concurrently.
pub fn concurrent_index_step(
    label: String,
    schema: &str,
    table: &str,
    name: &str,
    build: IndexCreateStatement,
) -> SqlStep {
    index_step(label, schema, table, name, build, true)
}

/// A `DO` block that raises `duplicate_object` when relation `schema.name` exists and is not an
/// index on `schema.table`.
fn index_name_free(schema: &str, table: &str, name: &str) -> Statement {
    let message = format!(
        "{schema}.{name} exists and is not an index on {schema}.{table}: this step builds an \
         index of that name (and first drops a leftover of its own); rename that relation, then \
         run the migration again"
    );
    let body = format!(
        " BEGIN IF EXISTS (SELECT FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = {} AND c.relname = {} AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i \
         WHERE i.indexrelid = c.oid AND i.indrelid = pg_catalog.to_regclass({}))) \
         THEN RAISE EXCEPTION USING ERRCODE = 'duplicate_object', MESSAGE = {}; END IF; END ",
        probes::lit(schema),
        probes::lit(name),
        probes::lit(&crate::guards::quote_qualified(schema, table)),
        probes::lit(&message),
    );
    let mut sql = String::new();
    crate::dsl::do_block(&body, &mut sql);
    probes::raw(sql)
}

/// One unit of a migration.
#[derive(Debug, Clone)]
pub enum Step {
    /// Schema or data statements with their inverse.
    Sql(SqlStep),
    /// A batched, resumable backfill (only in migrations that run outside a transaction).
    Backfill(Backfill),
    /// A check that runs before the steps after it (and, on `down`, before undoing the ones
    /// before it): it refuses to go on when going on would hurt.
    Guard(Guard),
}

/// Statements that run together, their inverse, and an optional "already done" probe.
#[derive(Debug, Clone)]
pub struct SqlStep {
    /// What the step does, for `plan` and logs.
    pub label: String,
    /// Executed in order; in one transaction when the migration itself is not transactional.
    pub up: Vec<Statement>,
    /// Executed in order by `down`.
    pub down: Vec<Statement>,
    /// A query returning one boolean: when true, `up` skips the step. This is what makes a
    /// migration that runs outside a transaction resumable after being killed halfway.
    pub done_when: Option<Statement>,
    /// Whether `up` and `down` may run inside a transaction (false for `... CONCURRENTLY`).
    pub transactional: bool,
}

/// The ordered steps of one migration.
#[derive(Debug, Clone, Default)]
pub struct MigrationPlan {
    steps: Vec<Step>,
    /// Linter rules a step knowingly breaks, by step index, with the reason: printed by
    /// `plan` as squawk's ignore comment before each of the step's statements.
    lint_ignores: Vec<(usize, LintIgnore)>,
}

/// Squawk rules one step knowingly breaks, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintIgnore {
    /// Squawk rule names, e.g. `ban-drop-constraint`.
    pub rules: Vec<String>,
    /// Why breaking them is sound here (printed after the rules).
    pub reason: String,
}

/// Why a step with a "done" probe is safe to rerun, though squawk cannot see it.
const PROBED: &str =
    "skipped when already done: the runner probes first, so a rerun after a failure resumes";

impl MigrationPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a statement and its inverse.
    pub fn step<U, D>(&mut self, label: impl Into<String>, up: &U, down: &D) -> &mut Self
    where
        U: StatementBuilder + ?Sized,
        D: StatementBuilder + ?Sized,
    {
        self.push(SqlStep {
            label: label.into(),
            up: vec![pg(up)],
            down: vec![pg(down)],
            done_when: None,
            transactional: true,
        })
    }

    /// Adds a statement whose inverse is carried by another step (e.g. an insert into a table
    /// that a later `down` drops anyway).
    pub fn forward_only<U>(&mut self, label: impl Into<String>, up: &U) -> &mut Self
    where
        U: StatementBuilder + ?Sized,
    {
        self.push(SqlStep {
            label: label.into(),
            up: vec![pg(up)],
            down: vec![],
            done_when: None,
            transactional: true,
        })
    }

    /// Adds a fully described step.
    pub fn push(&mut self, step: SqlStep) -> &mut Self {
        self.steps.push(Step::Sql(step));
        self
    }

    /// Adds a batched backfill.
    pub fn backfill(&mut self, backfill: Backfill) -> &mut Self {
        self.steps.push(Step::Backfill(backfill));
        self
    }

    /// Adds a guard.
    pub fn guard(&mut self, guard: Guard) -> &mut Self {
        self.steps.push(Step::Guard(guard));
        self
    }

    /// Appends every step of `other`.
    pub fn extend(&mut self, other: MigrationPlan) -> &mut Self {
        let offset = self.steps.len();
        self.steps.extend(other.steps);
        self.lint_ignores.extend(
            other
                .lint_ignores
                .into_iter()
                .map(|(i, ignore)| (i + offset, ignore)),
        );
        self
    }

    /// Says that the step added last knowingly breaks squawk's `rules`, and why; `plan`
    /// prints it as `-- squawk-ignore rules -- reason` before each of its statements.
    pub fn lint_ignore(&mut self, rules: &[&str], reason: &str) -> &mut Self {
        if let Some(last) = self.steps.len().checked_sub(1) {
            self.lint_ignores.push((
                last,
                LintIgnore {
                    rules: rules.iter().map(|r| (*r).to_owned()).collect(),
                    reason: reason.into(),
                },
            ));
        }
        self
    }

    /// Says that step `index` knowingly breaks squawk's `rules`, and why (as
    /// [`Self::lint_ignore`] does for the step added last).
    pub fn lint_ignore_at(&mut self, index: usize, rules: &[&str], reason: &str) -> &mut Self {
        if index < self.steps.len() {
            self.lint_ignores.push((
                index,
                LintIgnore {
                    rules: rules.iter().map(|r| (*r).to_owned()).collect(),
                    reason: reason.into(),
                },
            ));
        }
        self
    }

    /// The squawk ignore comment of step `index`, if it has one.
    fn lint_comment(&self, index: usize, probed: bool) -> Option<String> {
        let mut rules: Vec<&str> = Vec::new();
        let mut reasons: Vec<&str> = Vec::new();
        if probed {
            rules.push("prefer-robust-stmts");
            reasons.push(PROBED);
        }
        for (_, ignore) in self.lint_ignores.iter().filter(|(i, _)| *i == index) {
            rules.extend(ignore.rules.iter().map(String::as_str));
            reasons.push(&ignore.reason);
        }
        if rules.is_empty() {
            return None;
        }
        rules.dedup();
        Some(format!(
            "-- squawk-ignore {} -- {}",
            rules.join(", "),
            reasons.join("; ")
        ))
    }

    /// The steps, in `up` order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Applies the plan. `in_transaction` says whether the runner already wrapped the
    /// migration in one (then every statement simply joins it).
    pub async fn up(&self, manager: &SchemaManager<'_>, in_transaction: bool) -> Result<(), DbErr> {
        for step in &self.steps {
            match step {
                Step::Sql(sql) => {
                    if let Some(probe) = &sql.done_when
                        && probe_true(manager.get_connection(), probe).await?
                    {
                        tracing::info!(step = %sql.label, "already done, skipped");
                        continue;
                    }
                    tracing::debug!(step = %sql.label, "applying");
                    run_statements(manager, &sql.up, in_transaction || !sql.transactional).await?;
                }
                Step::Backfill(backfill) => backfill.run(manager.get_connection()).await?,
                Step::Guard(guard) => guard.before_up(manager.get_connection()).await?,
            }
        }
        Ok(())
    }

    /// Undoes the plan, last step first.
    pub async fn down(
        &self,
        manager: &SchemaManager<'_>,
        in_transaction: bool,
    ) -> Result<(), DbErr> {
        for step in self.steps.iter().rev() {
            match step {
                Step::Sql(sql) => {
                    run_statements(manager, &sql.down, in_transaction || !sql.transactional).await?
                }
                Step::Backfill(_) => {}
                Step::Guard(guard) => guard.before_down(manager.get_connection()).await?,
            }
        }
        Ok(())
    }

    /// Runs only the guards `down` would run, without undoing anything.
    pub async fn check_down<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        for step in self.steps.iter().rev() {
            if let Step::Guard(guard) = step {
                guard.before_down(db).await?;
            }
        }
        Ok(())
    }

    /// The SQL `up` would run, with guards and backfills described as comments.
    pub fn render_up(&self) -> Vec<String> {
        self.render_up_in(false)
    }

    /// [`Self::render_up`] for a migration that runs in one transaction (`in_transaction`) or
    /// not: outside one, a probed step's squawk comment says why a rerun is safe.
    pub fn render_up_in(&self, in_transaction: bool) -> Vec<String> {
        self.steps
            .iter()
            .enumerate()
            .flat_map(|(index, step)| match step {
                Step::Sql(sql) => {
                    let mut out = vec![format!("-- {}", sql.label)];
                    if sql.done_when.is_some() {
                        out[0].push_str(" (skipped when already done)");
                    }
                    // Inside the migration's transaction a failed step rolls back anyway.
                    let probed = sql.done_when.is_some() && !in_transaction;
                    let ignore = self.lint_comment(index, probed);
                    for s in &sql.up {
                        out.extend(ignore.clone());
                        out.push(format!("{s};"));
                    }
                    out
                }
                Step::Backfill(b) => b.render(),
                Step::Guard(g) => vec![format!("-- guard: {}", g.describe_up())],
            })
            .collect()
    }

    /// The SQL `down` would run.
    pub fn render_down(&self) -> Vec<String> {
        self.steps
            .iter()
            .rev()
            .flat_map(|step| match step {
                Step::Sql(sql) if !sql.down.is_empty() => {
                    let mut out = vec![format!("-- undo: {}", sql.label)];
                    out.extend(sql.down.iter().map(|s| format!("{s};")));
                    out
                }
                Step::Guard(g) => vec![format!("-- guard: {}", g.describe_down())],
                _ => vec![],
            })
            .collect()
    }
}

async fn run_statements(
    manager: &SchemaManager<'_>,
    statements: &[Statement],
    direct: bool,
) -> Result<(), DbErr> {
    if direct || statements.len() < 2 {
        for stmt in statements {
            manager.get_connection().execute_raw(stmt.clone()).await?;
        }
        return Ok(());
    }
    let txn = manager.begin().await?;
    for stmt in statements {
        txn.get_connection().execute_raw(stmt.clone()).await?;
    }
    txn.commit().await
}

async fn probe_true<C: ConnectionTrait>(db: &C, probe: &Statement) -> Result<bool, DbErr> {
    let row = db.query_one_raw(probe.clone()).await?;
    match row {
        Some(row) => Ok(row.try_get_by_index::<Option<bool>>(0)?.unwrap_or(false)),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Index};

    use super::index_step;

    fn step_sql(name: &str, concurrently: bool) -> Vec<String> {
        let step = index_step(
            "i".into(),
            "s",
            "t",
            name,
            Index::create().col(Alias::new("id")).to_owned(),
            concurrently,
        );
        step.up
            .iter()
            .chain(&step.down)
            .map(|s| s.sql.clone())
            .collect()
    }

    #[test]
    fn a_quote_in_an_index_name_is_escaped_in_every_statement() {
        for sql in step_sql("a\"; DROP TABLE s.t; --", true) {
            if sql.starts_with("DO") {
                assert!(sql.contains("'a\"; DROP TABLE s.t; --'"), "{sql}");
            } else {
                assert!(sql.contains("\"a\"\"; DROP TABLE s.t; --\""), "{sql}");
            }
        }
    }

    #[test]
    fn a_long_index_name_is_cut_as_postgresql_cuts_it() {
        let long = format!("{}é_idx", "x".repeat(62));
        let cut = "x".repeat(62);
        for sql in step_sql(&long, false) {
            assert!(sql.contains(&cut) && !sql.contains(&long), "{sql}");
        }
    }
}
