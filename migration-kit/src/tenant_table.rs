//! The one call that makes a table tenant-scoped.
//!
//! ```ignore
//! let plan = TenantTable::new("public", "invoices").references("customer_id", "public", "customers").plan();
//! ```
//! adds `tenant_id` (NOT NULL, defaulting to the current tenant, referencing `tenancy.tenants`),
//! makes the primary key `(tenant_id, id)`, turns references to other tenant tables into
//! composite foreign keys, indexes `(tenant_id)` and `(tenant_id, created_at DESC)`, enables and
//! forces row level security with the standard policies, and grants the app and superadmin
//! roles DML. `plan().down` undoes exactly that, in reverse.
//!
//! Link tables and per-tenant uniqueness fit the same call (see `m0007_permissions`):
//! [`TenantTable::composite_key`] for a key of several columns, [`TenantTable::unique`] for
//! `UNIQUE (tenant_id, ...)`, and [`TenantTable::references_key`] for a parent keyed by
//! something other than `id` (e.g. a membership keyed by `user_id`).
//!
//! Unless [`TenantTable::without_legacy`], the table also gets the legacy role's policies,
//! pinned to the default tenant by a constant (never a setting), DML for that role, and a
//! `tenant_id` default that gives a legacy login's rows the default tenant
//! ([`row_tenant_id`]); see `m0008_legacy_role`.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, ForeignKeyAction, Index, IndexOrder, Table};

use crate::ddl::{ColumnAlter, ConstraintAdd, ConstraintDrop, ConstraintKind};
use crate::dsl::{Grant, GrantObject, Policy, PolicyCommand, Privilege, RowLevelSecurity};
use crate::names::{
    APP_ROLE, DEFAULT_TENANT_ID, LEGACY_ROLE, SUPERADMIN_ROLE, TENANCY_SCHEMA, TENANT_COLUMN,
    TENANT_SETTING,
};
use crate::plan::{MigrationPlan, SqlStep, concurrent_index_step, index_step, pg};
use crate::probes;
use crate::tables::t;

/// A reference from a tenant table to another tenant table.
#[derive(Debug, Clone)]
pub struct Parent {
    /// The referencing column, e.g. `project_id`.
    pub column: String,
    /// The referenced table's schema.
    pub schema: String,
    /// The referenced table.
    pub table: String,
    /// The referenced table's own key column (default `id`; the reference is always
    /// `(tenant_id, column) -> (tenant_id, ref_column)`).
    pub ref_column: String,
    /// What deleting the parent does.
    pub on_delete: ForeignKeyAction,
}

/// How the app role's policies of a tenant table read the current tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PolicyForm {
    /// The setting read in the policy itself, [`tenant_predicate`]: nothing to inline when a
    /// statement is planned, and every name resolved once, when the policy is created. The
    /// default, and every policy's form from `m0017_policy_setting` on.
    #[default]
    Setting,
    /// `tenant_id = tenancy.current_tenant_id()`: the form m0002..m0016
    /// and the tenant-schema migration `ts0001_tables` created, which their plans keep so they
    /// stay what they were when they ran. Each planning inlines the function's body again.
    Function,
}

impl PolicyForm {
    /// `<column> = <the current tenant, in this form>`.
    pub fn predicate(self, column: &str) -> Expr {
        let current = match self {
            Self::Setting => current_tenant_setting(),
            Self::Function => current_tenant_id(),
        };
        Expr::col(Alias::new(column)).eq(current)
    }
}

/// A table made tenant-scoped.
#[derive(Debug, Clone)]
pub struct TenantTable {
    schema: String,
    table: String,
    key: Vec<String>,
    pkey: Option<String>,
    created_at: bool,
    parents: Vec<Parent>,
    unique: Vec<Vec<String>>,
    app_privileges: Vec<Privilege>,
    legacy: bool,
    app_grantee: Option<String>,
    policy_form: PolicyForm,
}

impl TenantTable {
    /// `schema.table`, keyed by `id`, with a `created_at` column.
    pub fn new(schema: &str, table: &str) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            key: vec!["id".into()],
            pkey: None,
            created_at: true,
            parents: vec![],
            unique: vec![],
            app_privileges: vec![
                Privilege::Select,
                Privilege::Insert,
                Privilege::Update,
                Privilege::Delete,
            ],
            legacy: true,
            app_grantee: None,
            policy_form: PolicyForm::Setting,
        }
    }

    /// No legacy policies, grants or default: for Tenantry's own tables (the unchanged legacy
    /// application does not know them) and for migrations that ran before `m0008_legacy_role`
    /// created the role (which then adds the legacy part to the tables that get it).
    pub fn without_legacy(mut self) -> Self {
        self.legacy = false;
        self
    }

    /// Whether the legacy role gets policies and grants on this table.
    pub fn has_legacy(&self) -> bool {
        self.legacy
    }

    /// Grant the app's DML to `role` instead of the app role itself (a dedicated tenant's
    /// own role, a member of the app role, so the app role's policies still apply to it).
    pub fn grant_app_privileges_to(mut self, role: &str) -> Self {
        self.app_grantee = Some(role.into());
        self
    }

    /// How the app role's policies read the current tenant (default [`PolicyForm::Setting`];
    /// the migrations written before m0017 pin [`PolicyForm::Function`]).
    pub fn policy_form(mut self, form: PolicyForm) -> Self {
        self.policy_form = form;
        self
    }

    /// The table's own key column (default `id`).
    pub fn key(mut self, column: &str) -> Self {
        self.key = vec![column.into()];
        self
    }

    /// The table's own key is several columns (a link table): the primary key becomes
    /// `(tenant_id, columns...)`.
    pub fn composite_key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// The primary key constraint's name, when it is not PostgreSQL's default `<table>_pkey`
    /// (an adopted table keeps the name its schema gave it).
    pub fn primary_key_name(mut self, name: &str) -> Self {
        self.pkey = Some(name.into());
        self
    }

    /// `UNIQUE (tenant_id, columns...)`, named `<table>_tenant_id_<columns>_key`: uniqueness
    /// per tenant, never across tenants.
    pub fn unique(mut self, columns: &[&str]) -> Self {
        self.unique
            .push(columns.iter().map(|c| (*c).to_owned()).collect());
        self
    }

    /// The table has no `created_at` column (no `(tenant_id, created_at DESC)` index).
    pub fn without_created_at(mut self) -> Self {
        self.created_at = false;
        self
    }

    /// The app may only read and append (an audit trail): SELECT and INSERT, no UPDATE/DELETE.
    pub fn append_only(mut self) -> Self {
        self.app_privileges = vec![Privilege::Select, Privilege::Insert];
        self
    }

    /// `column` references the key of another tenant table (`ON DELETE CASCADE`).
    pub fn references(self, column: &str, schema: &str, table: &str) -> Self {
        self.references_with(column, schema, table, ForeignKeyAction::Cascade)
    }

    /// `column` references another tenant table with the given delete action.
    pub fn references_with(
        mut self,
        column: &str,
        schema: &str,
        table: &str,
        on_delete: ForeignKeyAction,
    ) -> Self {
        self.parents.push(Parent {
            column: column.into(),
            schema: schema.into(),
            table: table.into(),
            ref_column: "id".into(),
            on_delete,
        });
        self
    }

    /// `column` references a tenant table whose own key is `ref_column` rather than `id`
    /// (e.g. a membership keyed by `user_id`), `ON DELETE CASCADE`.
    pub fn references_key(
        mut self,
        column: &str,
        schema: &str,
        table: &str,
        ref_column: &str,
    ) -> Self {
        self.parents.push(Parent {
            column: column.into(),
            schema: schema.into(),
            table: table.into(),
            ref_column: ref_column.into(),
            on_delete: ForeignKeyAction::Cascade,
        });
        self
    }

    /// `(schema, table)`.
    pub fn name(&self) -> (&str, &str) {
        (&self.schema, &self.table)
    }

    /// The referenced tenant tables.
    pub fn parents(&self) -> &[Parent] {
        &self.parents
    }

    /// The one call: everything that makes an existing, still single-tenant and empty (or
    /// small) table tenant-scoped. For a large legacy table use `migration::m0003_tenant_columns`'s
    /// shape instead (nullable column, batched backfill, `NOT VALID` constraints).
    pub fn plan(&self) -> MigrationPlan {
        let mut plan = MigrationPlan::new();
        let add = Table::alter()
            .table(t(&self.schema, Alias::new(&self.table)))
            .add_column(
                sea_orm::sea_query::ColumnDef::new(TENANT_COLUMN)
                    .uuid()
                    .not_null()
                    .default(self.tenant_default()),
            )
            .to_owned();
        let drop = Table::alter()
            .table(t(&self.schema, Alias::new(&self.table)))
            .drop_column(TENANT_COLUMN)
            .to_owned();
        plan.step(
            format!("{}.{}: tenant_id column", self.schema, self.table),
            &add,
            &drop,
        );
        plan.lint_ignore(
            &["adding-field-with-default"],
            "the default tenancy.current_tenant_id() is STABLE, not volatile: no table rewrite (PostgreSQL 11+)",
        );
        let fk = self.tenant_fk();
        plan.step(
            format!(
                "{}.{}: tenant_id references tenants",
                self.schema, self.table
            ),
            &fk,
            &fk.reverse(),
        );
        plan.extend(self.key_plan());
        for unique in self.unique_constraints() {
            plan.step(
                format!("{}: unique per tenant", unique.name()),
                &unique,
                &unique.reverse(),
            );
        }
        for parent in &self.parents {
            let fk = self.parent_fk(parent);
            plan.step(
                format!("{}: composite foreign key", fk.name()),
                &fk,
                &fk.reverse(),
            );
        }
        plan.extend(self.index_plan());
        plan.extend(self.security_plan());
        plan
    }

    /// The default of `tenant_id`: [`row_tenant_id`] when the legacy role uses the table (its
    /// inserts that do not name `tenant_id` land in the default tenant), else the current tenant.
    pub fn tenant_default(&self) -> Expr {
        if self.legacy {
            row_tenant_id()
        } else {
            current_tenant_id()
        }
    }

    /// The `UNIQUE (tenant_id, ...)` constraints declared with [`Self::unique`].
    pub fn unique_constraints(&self) -> Vec<ConstraintAdd> {
        self.unique
            .iter()
            .map(|columns| {
                let mut all = vec![TENANT_COLUMN.to_owned()];
                all.extend(columns.iter().cloned());
                ConstraintAdd::new(
                    &self.schema,
                    &self.table,
                    &format!("{}_{}_key", self.table, all.join("_")),
                    ConstraintKind::Unique(all),
                )
            })
            .collect()
    }

    /// Adds `tenant_id uuid NULL` (metadata only: no rewrite), skipped when the column exists;
    /// the first step of a legacy table's adoption, before the backfill.
    pub fn nullable_column_step(&self) -> SqlStep {
        let (schema, name) = (self.schema.as_str(), self.table.as_str());
        let add = Table::alter()
            .table(t(schema, Alias::new(name)))
            .add_column(
                sea_orm::sea_query::ColumnDef::new(TENANT_COLUMN)
                    .uuid()
                    .null(),
            )
            .to_owned();
        let drop = Table::alter()
            .table(t(schema, Alias::new(name)))
            .drop_column(TENANT_COLUMN)
            .to_owned();
        SqlStep {
            label: format!("{schema}.{name}: add tenant_id (nullable)"),
            up: vec![pg(&add)],
            down: vec![pg(&drop)],
            done_when: Some(probes::column_exists(schema, name, TENANT_COLUMN)),
            transactional: true,
        }
    }

    /// Makes a backfilled, nullable `tenant_id` binding without blocking writers for long, each
    /// step skipped when already done: `CHECK (tenant_id IS NOT NULL) NOT VALID` → `VALIDATE`
    /// → `SET NOT NULL` (no scan: the valid check proves it) → default to the current tenant →
    /// the reference to `tenants`, `NOT VALID` then validated.
    pub fn enforce_column_plan(&self) -> MigrationPlan {
        let (schema, name) = (self.schema.as_str(), self.table.as_str());
        let mut plan = MigrationPlan::new();
        let not_null = probes::column_not_null(schema, name, TENANT_COLUMN);
        let check = ConstraintAdd::new(
            schema,
            name,
            &format!("{name}_tenant_id_not_null"),
            ConstraintKind::Check(Expr::col(Alias::new(TENANT_COLUMN)).is_not_null()),
        )
        .not_valid();
        plan.push(SqlStep {
            label: format!("{schema}.{name}: CHECK (tenant_id IS NOT NULL) NOT VALID"),
            up: vec![pg(&check)],
            down: vec![pg(&check.reverse())],
            done_when: Some(probes::either(
                probes::constraint_exists(schema, name, check.name()),
                not_null.clone(),
            )),
            transactional: true,
        });
        plan.push(SqlStep {
            label: format!("{schema}.{name}: VALIDATE the check (reads the table, writers go on)"),
            up: vec![pg(&check.validate())],
            down: vec![],
            done_when: Some(probes::either(
                probes::constraint_validated(schema, name, check.name()),
                not_null.clone(),
            )),
            transactional: true,
        });
        let set_nn = ColumnAlter::set_not_null(schema, name, TENANT_COLUMN);
        plan.push(SqlStep {
            label: format!("{schema}.{name}: SET NOT NULL (proven by the check), drop the check"),
            up: vec![
                pg(&set_nn),
                pg(&ConstraintDrop::new(schema, name, check.name())),
            ],
            down: vec![pg(&set_nn.reverse())],
            done_when: Some(not_null),
            transactional: true,
        });
        plan.lint_ignore(
            &["ban-drop-constraint"],
            "the CHECK (tenant_id IS NOT NULL) dropped is replaced by SET NOT NULL in the same step",
        );
        let to_current = ColumnAlter::set_default(schema, name, TENANT_COLUMN, current_tenant_id());
        let to_default = ColumnAlter::set_default(schema, name, TENANT_COLUMN, default_tenant());
        plan.step(
            format!("{schema}.{name}: tenant_id defaults to the current tenant"),
            &to_current,
            &to_default,
        );
        plan.lint_ignore(
            &["prefer-robust-stmts"],
            "SET DEFAULT is idempotent: a rerun sets the same default",
        );
        plan.extend(self.tenant_fk_plan(false));
        plan
    }

    /// The reference to `tenants`, for after the backfill (present during it, its check would
    /// run once per updated row; `VALIDATE` checks every row in one scan): `NOT VALID`, then
    /// `VALIDATE`, each skipped when done. A `partitioned` table (which cannot take a `NOT
    /// VALID` foreign key) gets it added valid, and the `VALIDATE` step is then skipped.
    pub fn tenant_fk_plan(&self, partitioned: bool) -> MigrationPlan {
        let (schema, name) = (self.schema.as_str(), self.table.as_str());
        let mut plan = MigrationPlan::new();
        let fk = self.tenant_fk();
        let add = if partitioned {
            self.tenant_fk()
        } else {
            self.tenant_fk().not_valid()
        };
        plan.push(SqlStep {
            label: format!(
                "{schema}.{name}: tenant_id references tenants{}",
                if partitioned { "" } else { " (NOT VALID)" }
            ),
            up: vec![pg(&add)],
            down: vec![pg(&add.reverse())],
            done_when: Some(probes::constraint_exists(schema, name, fk.name())),
            transactional: true,
        });
        plan.push(SqlStep {
            label: format!("{schema}.{name}: VALIDATE tenant_id references tenants"),
            up: vec![pg(&fk.validate())],
            down: vec![],
            done_when: Some(probes::constraint_validated(schema, name, fk.name())),
            transactional: true,
        });
        plan
    }

    /// `tenant_id REFERENCES tenancy.tenants (id)`.
    pub fn tenant_fk(&self) -> ConstraintAdd {
        ConstraintAdd::new(
            &self.schema,
            &self.table,
            &format!("{}_tenant_id_fkey", self.table),
            ConstraintKind::ForeignKey {
                columns: vec![TENANT_COLUMN.into()],
                ref_schema: TENANCY_SCHEMA.into(),
                ref_table: "tenants".into(),
                ref_columns: vec!["id".into()],
                on_delete: Some(ForeignKeyAction::Cascade),
            },
        )
    }

    /// The composite foreign key to a parent: `(tenant_id, column) -> parent (tenant_id, key)`,
    /// so a row can never point at another tenant's row even when it knows its id.
    pub fn parent_fk(&self, parent: &Parent) -> ConstraintAdd {
        ConstraintAdd::new(
            &self.schema,
            &self.table,
            &format!("{}_{}_tenant_fkey", self.table, parent.column),
            ConstraintKind::ForeignKey {
                columns: vec![TENANT_COLUMN.into(), parent.column.clone()],
                ref_schema: parent.schema.clone(),
                ref_table: parent.table.clone(),
                ref_columns: vec![TENANT_COLUMN.into(), parent.ref_column.clone()],
                on_delete: Some(parent.on_delete),
            },
        )
    }

    /// The single-column foreign key a legacy schema had for `parent` (PostgreSQL's default name).
    pub fn legacy_parent_fk(&self, parent: &Parent) -> ConstraintAdd {
        ConstraintAdd::new(
            &self.schema,
            &self.table,
            &format!("{}_{}_fkey", self.table, parent.column),
            ConstraintKind::ForeignKey {
                columns: vec![parent.column.clone()],
                ref_schema: parent.schema.clone(),
                ref_table: parent.table.clone(),
                ref_columns: vec![parent.ref_column.clone()],
                on_delete: Some(parent.on_delete),
            },
        )
    }

    /// Primary key `(key)` becomes `(tenant_id, key)`; skipped when already done.
    pub fn key_plan(&self) -> MigrationPlan {
        self.key_plan_with(false)
    }

    /// Like [`Self::key_plan`]; with `concurrently`, the new key's unique index is built first
    /// with `CREATE UNIQUE INDEX CONCURRENTLY` (writers go on) and then adopted by the primary
    /// key, so the exclusive lock is held only for the swap itself.
    pub fn key_plan_with(&self, concurrently: bool) -> MigrationPlan {
        let pkey = self
            .pkey
            .clone()
            .unwrap_or_else(|| format!("{}_pkey", self.table));
        let mut tenant_key = vec![TENANT_COLUMN.to_owned()];
        tenant_key.extend(self.key.iter().cloned());
        let tenant_pk = ConstraintAdd::new(
            &self.schema,
            &self.table,
            &pkey,
            ConstraintKind::PrimaryKey(tenant_key),
        );
        let legacy_pk = ConstraintAdd::new(
            &self.schema,
            &self.table,
            &pkey,
            ConstraintKind::PrimaryKey(self.key.clone()),
        );
        let key_list = self.key.join(", ");
        let drop_pk = ConstraintDrop::new(&self.schema, &self.table, &pkey);
        let mut plan = MigrationPlan::new();
        let done = probes::primary_key_includes(&self.schema, &self.table, TENANT_COLUMN);
        let mut swap = vec![pg(&drop_pk), pg(&tenant_pk)];
        if concurrently {
            let idx_name = format!("{}_tenant_key_idx", self.table);
            let mut build = Index::create()
                .col(Alias::new(TENANT_COLUMN))
                .unique()
                .to_owned();
            for column in &self.key {
                build.col(Alias::new(column));
            }
            let mut step = concurrent_index_step(
                format!(
                    "{}.{}: unique index (tenant_id, {key_list}) built concurrently",
                    self.schema, self.table
                ),
                &self.schema,
                &self.table,
                &idx_name,
                build,
            );
            // Also done once the primary key includes tenant_id (the swap renames the index).
            step.done_when = step
                .done_when
                .map(|built| probes::either(done.clone(), built));
            plan.push(step);
            let adopt = ConstraintAdd::new(
                &self.schema,
                &self.table,
                &pkey,
                ConstraintKind::PrimaryKeyUsingIndex(idx_name),
            );
            swap = vec![pg(&drop_pk), pg(&adopt)];
        }
        plan.push(SqlStep {
            label: format!(
                "{}.{}: primary key (tenant_id, {key_list})",
                self.schema, self.table
            ),
            up: swap,
            down: vec![pg(&drop_pk), pg(&legacy_pk)],
            done_when: Some(done),
            transactional: true,
        });
        plan.lint_ignore(
            &["ban-drop-constraint"],
            "the primary key is replaced by one with tenant_id in the same transaction",
        );
        plan
    }

    /// Indexes `(tenant_id)` and, when the table has it, `(tenant_id, created_at DESC)`.
    pub fn index_plan(&self) -> MigrationPlan {
        self.index_plan_with(false)
    }

    /// Like [`Self::index_plan`]; with `concurrently`, built with `CREATE INDEX CONCURRENTLY`
    /// (an invalid leftover of a killed build is dropped and built again).
    pub fn index_plan_with(&self, concurrently: bool) -> MigrationPlan {
        let mut plan = MigrationPlan::new();
        let mut indexes = vec![(
            format!("{}_tenant_id_idx", self.table),
            Index::create().col(Alias::new(TENANT_COLUMN)).to_owned(),
        )];
        if self.created_at {
            indexes.push((
                format!("{}_tenant_created_idx", self.table),
                Index::create()
                    .col(Alias::new(TENANT_COLUMN))
                    .col((Alias::new("created_at"), IndexOrder::Desc))
                    .to_owned(),
            ));
        }
        for (name, idx) in indexes {
            plan.push(index_step(
                format!("index {name}"),
                &self.schema,
                &self.table,
                &name,
                idx,
                concurrently,
            ));
        }
        plan
    }

    /// ENABLE + FORCE row level security, one policy per command for the app role (writes
    /// with WITH CHECK), one for the superadmin role, and the grants.
    pub fn security_plan(&self) -> MigrationPlan {
        let table = t(&self.schema, Alias::new(&self.table));
        let mut plan = MigrationPlan::new();
        let enable = RowLevelSecurity::enable(table.clone());
        plan.step(
            format!("{}.{}: enable row level security", self.schema, self.table),
            &enable,
            &enable.reverse(),
        );
        let force = RowLevelSecurity::force(table.clone());
        plan.step(
            format!("{}.{}: force row level security", self.schema, self.table),
            &force,
            &force.reverse(),
        );
        for policy in tenant_policies(&self.table, table.clone(), self.policy_form) {
            plan.step(
                format!("policy {}", policy_label(&policy)),
                &policy,
                &policy.reverse(),
            );
        }
        let all = vec![
            Privilege::Select,
            Privilege::Insert,
            Privilege::Update,
            Privilege::Delete,
        ];
        for (role, privileges) in [
            (
                self.app_grantee.as_deref().unwrap_or(APP_ROLE),
                self.app_privileges.clone(),
            ),
            (SUPERADMIN_ROLE, all),
        ] {
            let grant = Grant::privileges(privileges)
                .on(GrantObject::table(table.clone()))
                .to(Alias::new(role))
                .to_owned();
            plan.step(
                format!("grant DML on {}.{} to {role}", self.schema, self.table),
                &grant,
                &grant.reverse(),
            );
        }
        if self.legacy {
            plan.extend(self.legacy_plan());
        }
        plan
    }

    /// The legacy role's part: one policy per command pinned to the default tenant
    /// ([`legacy_policies`]) and the app's privileges for the legacy role.
    pub fn legacy_plan(&self) -> MigrationPlan {
        let table = t(&self.schema, Alias::new(&self.table));
        let mut plan = MigrationPlan::new();
        for policy in legacy_policies(&self.table, table.clone()) {
            plan.step(
                format!("policy {}", policy_label(&policy)),
                &policy,
                &policy.reverse(),
            );
        }
        let grant = Grant::privileges(self.app_privileges.clone())
            .on(GrantObject::table(table))
            .to(LEGACY_ROLE)
            .to_owned();
        plan.step(
            format!(
                "grant DML on {}.{} to {LEGACY_ROLE}",
                self.schema, self.table
            ),
            &grant,
            &grant.reverse(),
        );
        plan
    }

    /// A non-unique index on the table's own key, `<table>_legacy_key_idx`, built
    /// concurrently: once the primary key is `(tenant_id, id)` no index leads with `id`, and a
    /// writer that filters by `id` alone (the unchanged application, a superuser's script)
    /// would scan the table. Never UNIQUE: a tenant-blind unique check leaks whether another
    /// tenant's row has that key.
    pub fn legacy_key_index_plan(&self) -> MigrationPlan {
        let name = format!("{}_legacy_key_idx", self.table);
        let mut build = Index::create();
        for column in &self.key {
            build.col(Alias::new(column));
        }
        let mut plan = MigrationPlan::new();
        plan.push(concurrent_index_step(
            format!("index {name} ({}) built concurrently", self.key.join(", ")),
            &self.schema,
            &self.table,
            &name,
            build,
        ));
        plan
    }
}

/// The default tenant as a typed `uuid` expression.
pub fn default_tenant() -> Expr {
    Expr::val(crate::names::DEFAULT_TENANT_ID).cast_as("uuid")
}

/// `tenancy.current_tenant_id()` as a policy or default expression.
pub fn current_tenant_id() -> Expr {
    Expr::cust("tenancy.current_tenant_id()")
}

/// The current tenant read from its setting, as `tenancy.current_tenant_id()`'s body reads it
/// (and as the planner inlines that function): `NULL` when the setting is unset or emptied,
/// so `tenant_id = NULL` matches nothing. Every name is qualified; a policy stores it parsed,
/// so its function, operator and cast are resolved once, when the policy is created or
/// altered, never under a caller's `search_path`.
pub fn current_tenant_setting() -> Expr {
    Expr::cust(format!(
        "NULLIF(pg_catalog.current_setting('{TENANT_SETTING}', true), '')::pg_catalog.uuid"
    ))
}

fn policy_label(p: &crate::dsl::PolicyCreateStatement) -> String {
    p.get_name().map(|n| n.to_string()).unwrap_or_default()
}

/// `tenant_id = NULLIF(pg_catalog.current_setting('tenantry.tenant_id', true), '')::pg_catalog.uuid`
/// ([`PolicyForm::Setting`]): no sub-select, so it plans as an index condition and a
/// distributed engine can propagate it, and no function to inline at each planning.
pub fn tenant_predicate() -> Expr {
    PolicyForm::Setting.predicate(TENANT_COLUMN)
}

/// `tenant_id = '00000000-0000-0000-0000-000000000000'::uuid`: the legacy role's only
/// predicate, a constant, so no setting a legacy login sends can move it to another tenant.
pub fn legacy_predicate() -> Expr {
    Expr::col(Alias::new(TENANT_COLUMN)).eq(Expr::val(DEFAULT_TENANT_ID).cast_as("uuid"))
}

/// `tenancy.row_tenant_id()` (created by `m0008_legacy_role`): the default tenant for a login
/// in the legacy role, the current tenant otherwise.
pub fn row_tenant_id() -> Expr {
    Expr::cust("tenancy.row_tenant_id()")
}

/// The legacy role's policies on a tenant table named `name`: one per command, every one
/// pinned by [`legacy_predicate`] (writes with WITH CHECK).
pub fn legacy_policies(
    name: &str,
    table: sea_orm::sea_query::TableRef,
) -> Vec<crate::dsl::PolicyCreateStatement> {
    per_command_policies(name, table, "legacy", LEGACY_ROLE, legacy_predicate)
}

/// The commands of the per-command policies: `(command, has USING, has WITH CHECK)`.
const APP_POLICY_COMMANDS: [(PolicyCommand, bool, bool); 4] = [
    (PolicyCommand::Select, true, false),
    (PolicyCommand::Insert, false, true),
    (PolicyCommand::Update, true, true),
    (PolicyCommand::Delete, true, false),
];

fn policy_name(table: &str, infix: &str, command: PolicyCommand) -> String {
    format!("{table}_{infix}_{}", command.as_str().to_lowercase())
}

/// One policy per command for `role`, named `<table>_<infix>_<command>`, each using
/// `predicate` (writes also as WITH CHECK).
fn per_command_policies(
    name: &str,
    table: sea_orm::sea_query::TableRef,
    infix: &str,
    role: &'static str,
    predicate: impl Fn() -> Expr,
) -> Vec<crate::dsl::PolicyCreateStatement> {
    let mut out = Vec::new();
    for (command, with_using, with_check) in APP_POLICY_COMMANDS {
        let mut p = Policy::create();
        p.name(Alias::new(policy_name(name, infix, command)))
            .table(table.clone())
            .command(command)
            .to(role);
        if with_using {
            p.using(predicate());
        }
        if with_check {
            p.with_check(predicate());
        }
        out.push(p);
    }
    out
}

/// The superadmin sees every row, but only inside a transaction that stated its reason.
pub fn superadmin_predicate() -> Expr {
    Expr::cust("tenancy.current_superadmin_reason()").is_not_null()
}

/// The standard policies of a tenant table named `name`, the app role's in `form`.
pub fn tenant_policies(
    name: &str,
    table: sea_orm::sea_query::TableRef,
    form: PolicyForm,
) -> Vec<crate::dsl::PolicyCreateStatement> {
    let mut out = per_command_policies(name, table.clone(), "app", APP_ROLE, || {
        form.predicate(TENANT_COLUMN)
    });
    let mut sa = Policy::create();
    sa.name(Alias::new(format!("{name}_superadmin_all")))
        .table(table)
        .command(PolicyCommand::All)
        .to(SUPERADMIN_ROLE)
        .using(superadmin_predicate())
        .with_check(superadmin_predicate());
    out.push(sa);
    out
}
