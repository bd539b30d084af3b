//! The tenant-schema migrations: what a dedicated tenant's schema holds, as plans written for
//! any schema, replayed in each one.
//!
//! The application tables are made by the SAME calls as the shared ones (`app_tables` of the
//! legacy baseline, then [`TenantTable`]): `tenant_id`, composite keys, ENABLE + FORCE row
//! level security and the standard policies on `tenancy.current_tenant_id()`. So the entities
//! and the scoped CRUD, which filter by `tenant_id`, work unchanged in both modes. The only
//! difference is the grantee: DML goes to the tenant's own role, not to `tenantry_app`.

use sea_orm::sea_query::{Alias, ColumnDef, Expr, Index, Query, Table};

use crate::ddl::TriggerCreate;
use crate::m0001_legacy_baseline::app_tables;
use crate::names::TENANCY_SCHEMA;
use crate::plan::{MigrationPlan, Step};
use crate::policy_rewrite::{Direction, Scope, rewrite_block};
use crate::tables::t;
use crate::tenant_table::{PolicyForm, TenantTable};

/// One migration of every dedicated tenant's schema.
#[derive(Debug, Clone, Copy)]
pub struct TenantSchemaMigration {
    /// Its name, recorded per schema in `tenancy.tenant_schema_versions`.
    pub name: &'static str,
    /// The plan for a given schema (whose tenant role has the same name).
    pub plan: fn(&str) -> MigrationPlan,
}

/// Every tenant-schema migration, in order.
pub fn tenant_schema_migrations() -> Vec<TenantSchemaMigration> {
    vec![
        TenantSchemaMigration {
            name: "ts0001_tables",
            plan: ts0001_tables,
        },
        TenantSchemaMigration {
            name: "ts0002_policy_setting",
            plan: ts0002_policy_setting,
        },
    ]
}

/// Seed 004's per-tenant reference tables and the rows each new tenant starts with.
pub const REFERENCE_DATA: [(&str, &[&str]); 3] = [
    (
        "cloud_providers",
        &[
            "AWS",
            "Azure",
            "GCP",
            "On-Premise",
            "DigitalOcean",
            "Oracle Cloud",
        ],
    ),
    (
        "registry_providers",
        &[
            "DockerHub",
            "AWS ECR",
            "GCP GCR",
            "Azure ACR",
            "GitHub CR",
            "GitLab CR",
            "Harbor",
            "JFrog",
        ],
    ),
    (
        "service_types",
        &[
            "API",
            "Worker",
            "Frontend",
            "Database",
            "Cache",
            "Message Queue",
            "Microservice",
        ],
    ),
];

/// `ts0001_tables`: projects, documents and tasks (as in the shared schema), and seed 004's
/// three reference tables seeded with their rows.
pub fn ts0001_tables(schema: &str) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    for (name, create) in app_tables(schema, false) {
        let drop = Table::drop().table(t(schema, Alias::new(name))).to_owned();
        plan.step(format!("{schema}.{name}: table"), &create, &drop);
        let trigger = TriggerCreate::before_update(
            &format!("{name}_set_updated_at"),
            schema,
            name,
            (TENANCY_SCHEMA, "set_updated_at"),
        );
        plan.step(
            format!("{schema}.{name}: trigger set_updated_at"),
            &trigger,
            &trigger.reverse(),
        );
    }
    let tags = Index::create()
        .name("documents_tags_gin")
        .table(t(schema, Alias::new("documents")))
        .col(Alias::new("tags"))
        .index_type(sea_orm::sea_query::IndexType::Custom(
            Alias::new("GIN").into(),
        ))
        .to_owned();
    let drop_tags = Index::drop()
        .name("documents_tags_gin")
        .table(t(schema, Alias::new("documents")))
        .to_owned();
    plan.step(
        format!("{schema}: GIN index documents(tags)"),
        &tags,
        &drop_tags,
    );
    plan.extend(
        TenantTable::new(schema, "projects")
            .grant_app_privileges_to(schema)
            .policy_form(PolicyForm::Function)
            .without_legacy()
            .plan(),
    );
    for child in ["documents", "tasks"] {
        plan.extend(
            TenantTable::new(schema, child)
                .references("project_id", schema, "projects")
                .grant_app_privileges_to(schema)
                .policy_form(PolicyForm::Function)
                .without_legacy()
                .plan(),
        );
    }
    for (table, rows) in REFERENCE_DATA {
        let create = Table::create()
            .table(t(schema, Alias::new(table)))
            .col(
                ColumnDef::new(Alias::new("id"))
                    .uuid()
                    .not_null()
                    .primary_key()
                    .default(Expr::cust("gen_random_uuid()")),
            )
            .col(ColumnDef::new(Alias::new("name")).text().not_null())
            .col(
                ColumnDef::new(Alias::new("created_at"))
                    .timestamp_with_time_zone()
                    .not_null()
                    .default(Expr::cust("now()")),
            )
            .to_owned();
        let drop = Table::drop().table(t(schema, Alias::new(table))).to_owned();
        plan.step(format!("{schema}.{table}: reference table"), &create, &drop);
        // Seeded before the table becomes tenant-scoped: adding `tenant_id` with its default
        // then assigns the rows to the tenant being provisioned (its context is set).
        let mut insert = Query::insert();
        insert
            .into_table(t(schema, Alias::new(table)))
            .columns([Alias::new("name")]);
        for row in rows {
            insert.values_panic([Expr::val(*row)]);
        }
        plan.forward_only(
            format!("{schema}.{table}: reference rows"),
            &Inlined(insert),
        );
        plan.extend(
            TenantTable::new(schema, table)
                .unique(&["name"])
                .grant_app_privileges_to(schema)
                .policy_form(PolicyForm::Function)
                .without_legacy()
                .plan(),
        );
    }
    plan
}

/// `ts0002_policy_setting`: in the schema, every policy `<column> =
/// tenancy.current_tenant_id()` reads `tenantry.tenant_id` itself (m0017's rewrite, here in
/// each schema's own transaction): ts0001's tables', and any other table's of the schema.
pub fn ts0002_policy_setting(schema: &str) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    plan.push(crate::plan::SqlStep {
        label: format!("{schema}: every policy of the function's form reads the setting"),
        up: vec![crate::probes::raw(rewrite_block(
            Direction::ToSetting,
            Scope::Schema(schema),
        ))],
        down: vec![],
        done_when: None,
        transactional: true,
    });
    plan
}

/// A statement rendered with its values inlined: a template is stored as text.
struct Inlined(sea_orm::sea_query::InsertStatement);

impl sea_orm::StatementBuilder for Inlined {
    fn build(&self, db_backend: &sea_orm::DbBackend) -> sea_orm::Statement {
        sea_orm::Statement::from_string(
            *db_backend,
            self.0.to_string(sea_orm::sea_query::PostgresQueryBuilder),
        )
    }
}

/// A tenant-schema plan that cannot be stored as a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant-schema migration {migration}: {reason}")]
pub struct TemplateError {
    /// The migration.
    pub migration: String,
    /// Why.
    pub reason: String,
}

/// The `up` statements of `migration` rendered for [`super::PLACEHOLDER`], in order: what is
/// stored in `tenancy.tenant_schema_steps` and replayed in each tenant's schema. Only plain
/// SQL steps without bound values can be templates (a schema is migrated in one transaction;
/// backfills and guards belong to the shared schema's migrations).
pub fn template(migration: &TenantSchemaMigration) -> Result<Vec<String>, TemplateError> {
    let err = |reason: &str| TemplateError {
        migration: migration.name.to_owned(),
        reason: reason.to_owned(),
    };
    let mut out = Vec::new();
    for step in (migration.plan)(super::PLACEHOLDER).steps() {
        match step {
            Step::Sql(sql) => {
                if !sql.transactional {
                    return Err(err(&format!("{}: must run in a transaction", sql.label)));
                }
                for stmt in &sql.up {
                    if stmt.values.as_ref().is_some_and(|v| !v.0.is_empty()) {
                        return Err(err(&format!("{}: bound values in a template", sql.label)));
                    }
                    out.push(stmt.sql.clone());
                }
            }
            Step::Backfill(_) | Step::Guard(_) => {
                return Err(err("backfills and guards cannot be replayed per schema"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenant_schema_migration_is_a_template_for_the_placeholder_only() {
        for m in tenant_schema_migrations() {
            let statements = template(&m).expect("a template");
            assert!(!statements.is_empty());
            for sql in &statements {
                // Every object it names is in the placeholder schema, public or tenancy.
                assert!(!sql.contains("\"t_1"), "{sql}");
            }
            assert!(
                statements
                    .iter()
                    .any(|s| s.contains(super::super::PLACEHOLDER))
            );
        }
    }
}
