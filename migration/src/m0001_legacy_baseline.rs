//! The single-tenant schema our users start from: `users`, `projects`, `documents` and `tasks`,
//! with `created_at`/`updated_at` kept by a trigger. `up -n 1` yields exactly this, so tests
//! and users can fill it with legacy data before the tenancy migrations run.

use sea_orm::sea_query::extension::postgres::Extension;
use sea_orm::sea_query::{
    ColumnDef, Expr, ForeignKey, ForeignKeyAction, Index, PostgresQueryBuilder, Table,
};

use crate::ddl::TriggerCreate;
use crate::dsl::{Function, FunctionLanguage, Volatility};
use crate::names::APP_SCHEMA;
use crate::plan::{MigrationPlan, SqlStep};
use crate::probes;
use crate::tables::{Documents, Projects, Tasks, Users, t};

/// Legacy tables in dependency order.
pub const LEGACY_TABLES: [&str; 4] = ["users", "projects", "documents", "tasks"];

fn timestamps(table: &mut sea_orm::sea_query::TableCreateStatement) {
    table
        .col(
            ColumnDef::new("created_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .col(
            ColumnDef::new("updated_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        );
}

fn id_column() -> ColumnDef {
    ColumnDef::new("id")
        .uuid()
        .not_null()
        .primary_key()
        .default(Expr::cust("gen_random_uuid()"))
        .take()
}

fn extension(plan: &mut MigrationPlan, name: &str, optional: bool) {
    let up = Extension::create()
        .name(name)
        .if_not_exists()
        .to_string(PostgresQueryBuilder);
    let down = Extension::drop()
        .name(name)
        .if_exists()
        .to_string(PostgresQueryBuilder);
    plan.push(SqlStep {
        label: format!(
            "extension {name}{}",
            if optional { " (only if available)" } else { "" }
        ),
        up: vec![probes::raw(up)],
        down: vec![probes::raw(down)],
        done_when: optional.then(|| probes::extension_unavailable(name)),
        transactional: true,
    });
}

/// The legacy trigger body: every update stamps `updated_at`.
pub const LEGACY_SET_UPDATED_AT: &str = "BEGIN NEW.updated_at := now(); RETURN NEW; END;";

/// `public.set_updated_at()` with the given PL/pgSQL body.
pub fn set_updated_at_function(body: &str) -> crate::dsl::FunctionCreateStatement {
    set_updated_at_in(APP_SCHEMA, body)
}

/// `<schema>.set_updated_at()` with the given PL/pgSQL body (the core-only set keeps its own
/// in `tenancy`, so a user's `public.set_updated_at` is never replaced).
pub fn set_updated_at_in(schema: &'static str, body: &str) -> crate::dsl::FunctionCreateStatement {
    Function::create()
        .name((schema, "set_updated_at"))
        .or_replace()
        .returns("trigger")
        .language(FunctionLanguage::PlPgSql)
        .volatility(Volatility::Volatile)
        .body(body)
        .to_owned()
}

/// The plan of this migration.
/// `projects`, `documents` and `tasks` as `CREATE TABLE`s in `schema` (keyed by `id`, before
/// tenancy). With `legacy_references` documents and tasks reference `projects (id)` the way
/// the single-tenant schema did, and owners and assignees reference `public.users` (m0011
/// moves it to `tenancy`); a dedicated tenant's schema leaves the project references out, since
/// `TenantTable` adds the composite `(tenant_id, project_id)` keys right after, and references
/// the identity table where it is now, `tenancy.users`.
pub fn app_tables(
    schema: &str,
    legacy_references: bool,
) -> Vec<(&'static str, sea_orm::sea_query::TableCreateStatement)> {
    let users = if legacy_references {
        APP_SCHEMA
    } else {
        crate::names::IDENTITY_SCHEMA
    };
    let mut projects = Table::create();
    projects
        .table(t(schema, Projects::Table))
        .col(id_column())
        .col(ColumnDef::new(Projects::OwnerId).uuid().null())
        .col(ColumnDef::new(Projects::Name).text().not_null())
        .col(
            ColumnDef::new(Projects::Description)
                .text()
                .not_null()
                .default(""),
        )
        .col(
            ColumnDef::new(Projects::Status)
                .text()
                .not_null()
                .default("active"),
        )
        .col(
            ColumnDef::new(Projects::Metadata)
                .json_binary()
                .not_null()
                .default(Expr::cust("'{}'::jsonb")),
        )
        .foreign_key(
            ForeignKey::create()
                .name("projects_owner_id_fkey")
                .from_col(Projects::OwnerId)
                .to(t(users, Users::Table), Users::Id)
                .on_delete(ForeignKeyAction::SetNull),
        );
    timestamps(&mut projects);

    let mut documents = Table::create();
    documents
        .table(t(schema, Documents::Table))
        .col(id_column())
        .col(ColumnDef::new(Documents::ProjectId).uuid().not_null())
        .col(ColumnDef::new(Documents::Title).text().not_null())
        .col(
            ColumnDef::new(Documents::Body)
                .text()
                .not_null()
                .default(""),
        )
        .col(
            ColumnDef::new(Documents::Tags)
                .array(sea_orm::sea_query::ColumnType::Text)
                .not_null()
                .default(Expr::cust("'{}'::text[]")),
        );
    if legacy_references {
        documents.foreign_key(
            ForeignKey::create()
                .name("documents_project_id_fkey")
                .from_col(Documents::ProjectId)
                .to(t(schema, Projects::Table), Projects::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
    }
    timestamps(&mut documents);

    let mut tasks = Table::create();
    tasks
        .table(t(schema, Tasks::Table))
        .col(id_column())
        .col(ColumnDef::new(Tasks::ProjectId).uuid().not_null())
        .col(ColumnDef::new(Tasks::Title).text().not_null())
        .col(
            ColumnDef::new(Tasks::Status)
                .text()
                .not_null()
                .default("todo"),
        )
        .col(ColumnDef::new(Tasks::AssigneeId).uuid().null())
        .col(
            ColumnDef::new(Tasks::DueAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .foreign_key(
            ForeignKey::create()
                .name("tasks_assignee_id_fkey")
                .from_col(Tasks::AssigneeId)
                .to(t(users, Users::Table), Users::Id)
                .on_delete(ForeignKeyAction::SetNull),
        );
    if legacy_references {
        tasks.foreign_key(
            ForeignKey::create()
                .name("tasks_project_id_fkey")
                .from_col(Tasks::ProjectId)
                .to(t(schema, Projects::Table), Projects::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
    }
    timestamps(&mut tasks);

    vec![
        ("projects", projects),
        ("documents", documents),
        ("tasks", tasks),
    ]
}

/// Tenantry's identity table (the people who sign in; global, not tenant-scoped) in `schema`:
/// `public` here (m0011 moves it to `tenancy`), `tenancy` directly in the core-only set.
pub fn users_table(schema: &str) -> sea_orm::sea_query::TableCreateStatement {
    let mut users = Table::create();
    users
        .table(t(schema, Users::Table))
        .col(id_column())
        .col(
            ColumnDef::new(Users::Email)
                .custom("citext")
                .not_null()
                .unique_key(),
        )
        .col(
            ColumnDef::new(Users::FullName)
                .text()
                .not_null()
                .default(""),
        )
        .col(ColumnDef::new(Users::PasswordHash).text().null());
    timestamps(&mut users);
    users
}

/// The legacy baseline.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    extension(&mut plan, "pgcrypto", false);
    extension(&mut plan, "citext", false);
    extension(&mut plan, "vector", true);

    let set_updated_at = set_updated_at_function(LEGACY_SET_UPDATED_AT);
    plan.step(
        "function set_updated_at()",
        &set_updated_at,
        &set_updated_at.reverse(),
    );

    let users = users_table(APP_SCHEMA);

    for (name, create) in std::iter::once(("users", users)).chain(app_tables(APP_SCHEMA, true)) {
        let drop = Table::drop().table(t(APP_SCHEMA, name)).to_owned();
        plan.step(format!("table {name}"), &create, &drop);
        let trigger = TriggerCreate::before_update(
            &format!("{name}_set_updated_at"),
            APP_SCHEMA,
            name,
            (APP_SCHEMA, "set_updated_at"),
        );
        plan.step(
            format!("trigger {name}_set_updated_at"),
            &trigger,
            &trigger.reverse(),
        );
    }

    // A GIN index on an array column: legacy apps search documents by tag.
    let tags = Index::create()
        .name("documents_tags_gin")
        .table(t(APP_SCHEMA, Documents::Table))
        .col(Documents::Tags)
        .index_type(sea_orm::sea_query::IndexType::Custom(
            sea_orm::sea_query::Alias::new("GIN").into(),
        ))
        .to_owned();
    let drop_tags = Index::drop()
        .name("documents_tags_gin")
        .table(t(APP_SCHEMA, Documents::Table))
        .to_owned();
    plan.step("GIN index documents(tags)", &tags, &drop_tags);
    plan
}
