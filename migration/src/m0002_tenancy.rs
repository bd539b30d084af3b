//! Tenancy: schema `tenancy`, the context functions, `tenants` (with the default tenant),
//! `tenant_users`, `api_keys`, `usage_events`, `audit_logs` and `superadmin_audit_logs`.

use sea_orm::sea_query::{
    Alias, ColumnDef, ConditionalStatement, Expr, ExprTrait, ForeignKey, ForeignKeyAction, Func,
    Index, IndexOrder, IndexType, OnConflict, Query, Table, TableCreateStatement,
};

use crate::core_set::Set;
use crate::ddl::{SchemaCreate, TriggerCreate};
use crate::dsl::{Function, FunctionLanguage, Volatility};
use crate::m0001_legacy_baseline::{LEGACY_SET_UPDATED_AT, set_updated_at_in, users_table};
use crate::names::{
    APP_SCHEMA, DEFAULT_TENANT_ID, DEFAULT_TENANT_SLUG, SUPERADMIN_REASON_SETTING, TENANCY_SCHEMA,
    TENANT_SETTING, USER_SETTING,
};
use crate::plan::{MigrationPlan, SqlStep};
use crate::tables::{
    ApiKeys, AuditLogs, SuperadminAuditLogs, TenantUsers, Tenants, UsageEvents, Users, t,
};
use sea_orm::sea_query::PostgresQueryBuilder;
use sea_orm::sea_query::extension::postgres::Extension;

/// Tenant-scoped tables this migration creates, in dependency order.
pub const TENANCY_TENANT_TABLES: [&str; 4] =
    ["tenant_users", "api_keys", "usage_events", "audit_logs"];

pub use migration_kit::tenant_table::current_tenant_id;

/// The setting readers `tenancy.<name>()` of this migration: `(name, setting, type)`.
pub(crate) const SETTING_READERS: [(&str, &str, &str); 3] = [
    ("current_tenant_id", TENANT_SETTING, "uuid"),
    ("current_user_id", USER_SETTING, "uuid"),
    (
        "current_superadmin_reason",
        SUPERADMIN_REASON_SETTING,
        "text",
    ),
];

/// `tenancy.<name>()` reading `setting` as `returns`, the cast written `::{cast}` (m0015
/// qualifies it: `pg_catalog.uuid`, see there).
pub(crate) fn setting_reader(
    name: &str,
    setting: &str,
    returns: &str,
    cast: &str,
) -> crate::dsl::FunctionCreateStatement {
    // Inlinable by design: LANGUAGE sql, STABLE, not STRICT, no SET clause and not SECURITY
    // DEFINER, so the planner folds it into the query once and uses the tenant_id index. An
    // unset or emptied setting (`''` after a transaction that set it ended) gives NULL, and
    // `tenant_id = NULL` matches nothing: fail closed.
    Function::create()
        .name((Alias::new(TENANCY_SCHEMA), Alias::new(name)))
        .or_replace()
        .returns(returns)
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .parallel_safe()
        .security_invoker()
        .body(format!(
            "SELECT NULLIF(pg_catalog.current_setting('{setting}', true), '')::{cast}"
        ))
        .to_owned()
}

fn timestamps(table: &mut TableCreateStatement) {
    for c in ["created_at", "updated_at"] {
        table.col(
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        );
    }
}

fn tenant_column() -> ColumnDef {
    ColumnDef::new("tenant_id")
        .uuid()
        .not_null()
        .default(current_tenant_id())
        .take()
}

fn tenant_fk(table: &str) -> sea_orm::sea_query::ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("{table}_tenant_id_fkey"))
        .from_col("tenant_id")
        .to(t(TENANCY_SCHEMA, Tenants::Table), Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn check_in(column: &str, values: &[&str]) -> Expr {
    Expr::col(Alias::new(column)).is_in(values.iter().map(|v| (*v).to_owned()))
}

/// The plan of this migration, after our demo baseline (m0001): `tenant_users` references
/// `public.users` (m0011 moves it to `tenancy`).
pub fn plan() -> MigrationPlan {
    plan_in(Set::Full)
}

/// The plan of this migration in the core-only set (a user's database, no demo baseline): the
/// identity table `tenancy.users` and `tenancy.set_updated_at()` are created here, and
/// `citext` if absent (kept on `down`: the user's database may have had it).
pub fn core_plan() -> MigrationPlan {
    plan_in(Set::Core)
}

fn plan_in(set: Set) -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let schema = SchemaCreate::new(TENANCY_SCHEMA);
    plan.step("schema tenancy", &schema, &schema.reverse());
    let helpers = match set {
        Set::Full => APP_SCHEMA,
        Set::Core => {
            identity_table(&mut plan);
            TENANCY_SCHEMA
        }
    };

    for (name, setting, ty) in SETTING_READERS {
        let f = setting_reader(name, setting, ty, ty);
        plan.step(format!("function tenancy.{name}()"), &f, &f.reverse());
    }

    let mut tenants = Table::create();
    tenants
        .table(t(TENANCY_SCHEMA, Tenants::Table))
        .col(
            ColumnDef::new(Tenants::Id)
                .uuid()
                .not_null()
                .primary_key()
                .default(Expr::cust("gen_random_uuid()")),
        )
        .col(ColumnDef::new(Tenants::Name).text().not_null())
        .col(
            ColumnDef::new(Tenants::Slug)
                .text()
                .not_null()
                .unique_key()
                .check(Expr::cust("slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'")),
        )
        .col(
            ColumnDef::new(Tenants::Region)
                .text()
                .not_null()
                .default("eu"),
        )
        .col(
            ColumnDef::new(Tenants::Plan)
                .text()
                .not_null()
                .default("free")
                .check(check_in("plan", &["free", "pro", "enterprise"])),
        )
        .col(
            ColumnDef::new(Tenants::Status)
                .text()
                .not_null()
                .default("active")
                .check(check_in(
                    "status",
                    &["active", "suspended", "trial", "cancelled"],
                )),
        )
        .col(ColumnDef::new(Tenants::AdminEmail).custom("citext").null())
        .col(
            ColumnDef::new(Tenants::Settings)
                .json_binary()
                .not_null()
                .default(Expr::cust("'{}'::jsonb")),
        );
    timestamps(&mut tenants);
    create_table(&mut plan, "tenants", &tenants);

    // Partial, expression and GIN indexes (sea-query has these).
    let active = Index::create()
        .name("tenants_active_slug_idx")
        .table(t(TENANCY_SCHEMA, Tenants::Table))
        .col(Tenants::Slug)
        .and_where(Expr::col(Tenants::Status).eq("active"))
        .to_owned();
    let lower_name = Index::create()
        .name("tenants_lower_name_idx")
        .table(t(TENANCY_SCHEMA, Tenants::Table))
        .col(Func::lower(Expr::col(Tenants::Name)))
        .to_owned();
    let settings = Index::create()
        .name("tenants_settings_gin")
        .table(t(TENANCY_SCHEMA, Tenants::Table))
        .col(Tenants::Settings)
        .index_type(IndexType::Custom(Alias::new("GIN").into()))
        .to_owned();
    for idx in [active, lower_name, settings] {
        index(&mut plan, idx);
    }

    let default_tenant = Query::insert()
        .into_table(t(TENANCY_SCHEMA, Tenants::Table))
        .columns([
            Tenants::Id,
            Tenants::Name,
            Tenants::Slug,
            Tenants::Plan,
            Tenants::Status,
        ])
        .values_panic([
            Expr::val(DEFAULT_TENANT_ID).cast_as("uuid"),
            Expr::val("Default tenant"),
            Expr::val(DEFAULT_TENANT_SLUG),
            Expr::val("free"),
            Expr::val("active"),
        ])
        .on_conflict(OnConflict::column(Tenants::Id).do_nothing().to_owned())
        .to_owned();
    plan.forward_only("default tenant (insert if absent)", &default_tenant);

    let mut tenant_users = Table::create();
    tenant_users
        .table(t(TENANCY_SCHEMA, TenantUsers::Table))
        .col(tenant_column())
        .col(ColumnDef::new(TenantUsers::UserId).uuid().not_null())
        .col(
            ColumnDef::new(TenantUsers::Role)
                .text()
                .not_null()
                .default("member")
                .check(check_in("role", &["owner", "admin", "member", "viewer"])),
        )
        .primary_key(
            Index::create()
                .col(TenantUsers::TenantId)
                .col(TenantUsers::UserId),
        )
        .foreign_key(&mut tenant_fk("tenant_users"))
        .foreign_key(
            ForeignKey::create()
                .name("tenant_users_user_id_fkey")
                .from_col(TenantUsers::UserId)
                .to(t(set.users_schema(), Users::Table), Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        );
    timestamps(&mut tenant_users);
    create_table(&mut plan, "tenant_users", &tenant_users);
    index(
        &mut plan,
        Index::create()
            .name("tenant_users_user_id_idx")
            .table(t(TENANCY_SCHEMA, TenantUsers::Table))
            .col(TenantUsers::UserId)
            .to_owned(),
    );

    let mut api_keys = Table::create();
    api_keys
        .table(t(TENANCY_SCHEMA, ApiKeys::Table))
        .col(tenant_column())
        .col(
            ColumnDef::new(ApiKeys::Id)
                .uuid()
                .not_null()
                .default(Expr::cust("gen_random_uuid()")),
        )
        .col(ColumnDef::new(ApiKeys::Name).text().not_null())
        .col(
            ColumnDef::new(ApiKeys::Prefix)
                .text()
                .not_null()
                .check(Expr::cust("length(prefix) BETWEEN 8 AND 32")),
        )
        .col(
            ColumnDef::new(ApiKeys::SecretHash)
                .binary()
                .not_null()
                .check(Expr::cust("length(secret_hash) = 32")),
        )
        .col(
            ColumnDef::new(ApiKeys::Scopes)
                .array(sea_orm::sea_query::ColumnType::Text)
                .not_null()
                .default(Expr::cust("'{}'::text[]")),
        )
        .col(ColumnDef::new(ApiKeys::RateLimitPerMinute).integer().null())
        .col(ColumnDef::new(ApiKeys::MonthlyQuota).big_integer().null())
        .col(
            ColumnDef::new(ApiKeys::ExpiresAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .col(
            ColumnDef::new(ApiKeys::RevokedAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .col(
            ColumnDef::new(ApiKeys::LastUsedAt)
                .timestamp_with_time_zone()
                .null(),
        )
        .col(ColumnDef::new(ApiKeys::CreatedBy).uuid().null())
        .primary_key(Index::create().col(ApiKeys::TenantId).col(ApiKeys::Id))
        .index(
            Index::create()
                .name("api_keys_tenant_id_prefix_key")
                .unique()
                .col(ApiKeys::TenantId)
                .col(ApiKeys::Prefix),
        )
        .foreign_key(&mut tenant_fk("api_keys"));
    timestamps(&mut api_keys);
    create_table(&mut plan, "api_keys", &api_keys);
    plan.lint_ignore(
        &["prefer-bigint-over-int"],
        "rate_limit_per_minute is a rate per minute: integer is ample, and the entity maps it to i32",
    );
    // Authentication looks a presented key up by its public prefix before any tenant is known.
    index(
        &mut plan,
        Index::create()
            .name("api_keys_prefix_idx")
            .table(t(TENANCY_SCHEMA, ApiKeys::Table))
            .col(ApiKeys::Prefix)
            .to_owned(),
    );

    let mut usage = Table::create();
    usage
        .table(t(TENANCY_SCHEMA, UsageEvents::Table))
        .col(tenant_column())
        .col(
            ColumnDef::new(UsageEvents::Id)
                .uuid()
                .not_null()
                .default(Expr::cust("gen_random_uuid()")),
        )
        .col(ColumnDef::new(UsageEvents::ApiKeyId).uuid().null())
        .col(ColumnDef::new(UsageEvents::Kind).text().not_null())
        .col(
            ColumnDef::new(UsageEvents::Quantity)
                .big_integer()
                .not_null()
                .default(1),
        )
        .col(
            ColumnDef::new(UsageEvents::TokensIn)
                .big_integer()
                .not_null()
                .default(0),
        )
        .col(
            ColumnDef::new(UsageEvents::TokensOut)
                .big_integer()
                .not_null()
                .default(0),
        )
        .col(
            ColumnDef::new(UsageEvents::AudioSeconds)
                .double()
                .not_null()
                .default(0),
        )
        .col(
            ColumnDef::new(UsageEvents::OcrPages)
                .integer()
                .not_null()
                .default(0),
        )
        .col(ColumnDef::new(UsageEvents::LatencyMs).integer().null())
        .col(ColumnDef::new(UsageEvents::Endpoint).text().null())
        .col(
            ColumnDef::new(UsageEvents::Metadata)
                .json_binary()
                .not_null()
                .default(Expr::cust("'{}'::jsonb")),
        )
        .col(
            ColumnDef::new(UsageEvents::OccurredAt)
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .col(
            ColumnDef::new("created_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .primary_key(
            Index::create()
                .col(UsageEvents::TenantId)
                .col(UsageEvents::Id),
        )
        .foreign_key(&mut tenant_fk("usage_events"))
        .foreign_key(
            ForeignKey::create()
                .name("usage_events_api_key_fkey")
                .from_col(UsageEvents::TenantId)
                .from_col(UsageEvents::ApiKeyId)
                .to_tbl(t(TENANCY_SCHEMA, ApiKeys::Table))
                .to_col(ApiKeys::TenantId)
                .to_col(ApiKeys::Id),
        );
    create_table(&mut plan, "usage_events", &usage);
    plan.lint_ignore(
        &["prefer-bigint-over-int"],
        "ocr_pages and latency_ms count pages and milliseconds of one event: integer is ample, and the entity maps them to i32",
    );
    index(
        &mut plan,
        Index::create()
            .name("usage_events_tenant_occurred_idx")
            .table(t(TENANCY_SCHEMA, UsageEvents::Table))
            .col(UsageEvents::TenantId)
            .col((UsageEvents::OccurredAt, IndexOrder::Desc))
            .to_owned(),
    );

    let mut audit = Table::create();
    audit
        .table(t(TENANCY_SCHEMA, AuditLogs::Table))
        .col(tenant_column())
        .col(
            ColumnDef::new(AuditLogs::Id)
                .uuid()
                .not_null()
                .default(Expr::cust("gen_random_uuid()")),
        )
        .col(ColumnDef::new(AuditLogs::ActorUserId).uuid().null())
        .col(ColumnDef::new(AuditLogs::ActorApiKeyId).uuid().null())
        .col(ColumnDef::new(AuditLogs::Action).text().not_null())
        .col(ColumnDef::new(AuditLogs::ResourceType).text().null())
        .col(ColumnDef::new(AuditLogs::ResourceId).text().null())
        .col(
            ColumnDef::new(AuditLogs::Details)
                .json_binary()
                .not_null()
                .default(Expr::cust("'{}'::jsonb")),
        )
        .col(
            ColumnDef::new("created_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        )
        .primary_key(Index::create().col(AuditLogs::TenantId).col(AuditLogs::Id))
        .foreign_key(&mut tenant_fk("audit_logs"));
    create_table(&mut plan, "audit_logs", &audit);

    let mut sa_audit = Table::create();
    sa_audit
        .table(t(TENANCY_SCHEMA, SuperadminAuditLogs::Table))
        .col(
            ColumnDef::new(SuperadminAuditLogs::Id)
                .uuid()
                .not_null()
                .primary_key()
                .default(Expr::cust("gen_random_uuid()")),
        )
        .col(
            ColumnDef::new(SuperadminAuditLogs::Actor)
                .text()
                .not_null()
                .check(Expr::cust("length(actor) > 0")),
        )
        .col(
            ColumnDef::new(SuperadminAuditLogs::Reason)
                .text()
                .not_null()
                .check(Expr::cust("length(reason) > 0")),
        )
        .col(
            ColumnDef::new(SuperadminAuditLogs::ScopeTenantId)
                .uuid()
                .null(),
        )
        .col(
            ColumnDef::new(SuperadminAuditLogs::Action)
                .text()
                .not_null(),
        )
        .col(
            ColumnDef::new(SuperadminAuditLogs::Details)
                .json_binary()
                .not_null()
                .default(Expr::cust("'{}'::jsonb")),
        )
        .col(
            ColumnDef::new("created_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        );
    create_table(&mut plan, "superadmin_audit_logs", &sa_audit);

    for table in ["tenants", "tenant_users", "api_keys"] {
        let trigger = TriggerCreate::before_update(
            &format!("{table}_set_updated_at"),
            TENANCY_SCHEMA,
            table,
            (helpers, "set_updated_at"),
        );
        plan.step(
            format!("trigger {table}_set_updated_at"),
            &trigger,
            &trigger.reverse(),
        );
    }
    // Last in `up` order, so `down` checks it before dropping anything.
    let scoped: Vec<_> = TENANCY_TENANT_TABLES
        .iter()
        .map(|name| crate::tenant_table::TenantTable::new(TENANCY_SCHEMA, name))
        .collect();
    plan.guard(crate::guards::keep_assignments(&scoped));
    plan
}

/// The core-only set's identity table, its `updated_at` trigger and what they need.
fn identity_table(plan: &mut MigrationPlan) {
    let citext = Extension::create()
        .name("citext")
        .if_not_exists()
        .to_string(PostgresQueryBuilder);
    plan.push(SqlStep {
        label: "extension citext (if absent; kept by down)".into(),
        up: vec![crate::probes::raw(citext)],
        down: vec![],
        done_when: None,
        transactional: true,
    });
    let set_updated_at = set_updated_at_in(TENANCY_SCHEMA, LEGACY_SET_UPDATED_AT);
    plan.step(
        "function tenancy.set_updated_at()",
        &set_updated_at,
        &set_updated_at.reverse(),
    );
    create_table(plan, "users", &users_table(TENANCY_SCHEMA));
    let trigger = TriggerCreate::before_update(
        "users_set_updated_at",
        TENANCY_SCHEMA,
        "users",
        (TENANCY_SCHEMA, "set_updated_at"),
    );
    plan.step("trigger users_set_updated_at", &trigger, &trigger.reverse());
}

fn create_table(plan: &mut MigrationPlan, name: &str, create: &TableCreateStatement) {
    let drop = Table::drop()
        .table(t(TENANCY_SCHEMA, Alias::new(name)))
        .to_owned();
    plan.step(format!("table tenancy.{name}"), create, &drop);
}

fn index(plan: &mut MigrationPlan, create: sea_orm::sea_query::IndexCreateStatement) {
    let name = create
        .get_index_spec()
        .get_name()
        .unwrap_or_default()
        .to_owned();
    // sea-query's PostgreSQL DROP INDEX takes only the schema from the table reference.
    let drop = Index::drop()
        .name(&name)
        .table(t(TENANCY_SCHEMA, Alias::new(&name)))
        .to_owned();
    plan.step(format!("index {name}"), &create, &drop);
}
