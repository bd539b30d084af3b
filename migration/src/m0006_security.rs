//! Security: the group roles, context-function grants, row level security with policies on
//! every tenant table (and on the global `tenants` and `users`), grants, and the one
//! SECURITY DEFINER lookup the application needs before it knows a tenant (API-key
//! authentication).

use sea_orm::sea_query::{Alias, Expr, ExprTrait};

use crate::core_set::Set;
use crate::ddl::{OwnerAlter, ident};
use crate::dsl::{
    DefaultObjects, DefaultPrivileges, Function, FunctionLanguage, Grant, GrantObject, Policy,
    PolicyCommand, PolicyCreateStatement, Privilege, Revoke, Role, RowLevelSecurity, Volatility,
};
use crate::m0002_tenancy::current_tenant_id;
use crate::m0003_tenant_columns::legacy_tenant_tables;
use crate::names::{APP_ROLE, APP_SCHEMA, DEFINER_ROLE, SUPERADMIN_ROLE, TENANCY_SCHEMA};
use crate::plan::{MigrationPlan, SqlStep, pg};
use crate::probes;
use crate::tables::t;
use crate::tenant_table::{PolicyForm, TenantTable, superadmin_predicate};

/// Every tenant-scoped table after all migrations, in dependency order.
pub fn tenant_tables() -> Vec<TenantTable> {
    tenant_tables_in(Set::Full)
}

/// The tenant-scoped tables of `set`: the core-only set has none of our demo tables.
fn tenant_tables_in(set: Set) -> Vec<TenantTable> {
    let mut tables = vec![
        TenantTable::new(TENANCY_SCHEMA, "tenant_users")
            .key("user_id")
            .without_legacy(),
        TenantTable::new(TENANCY_SCHEMA, "api_keys").without_legacy(),
        // Metering is what quotas and bills are computed from: the app appends, never rewrites.
        TenantTable::new(TENANCY_SCHEMA, "usage_events")
            .without_created_at()
            .append_only()
            .without_legacy(),
        TenantTable::new(TENANCY_SCHEMA, "audit_logs")
            .append_only()
            .without_legacy(),
    ];
    if set == Set::Full {
        tables.extend(legacy_tenant_tables());
    }
    // Their policies as this migration created them (m0017 rewrites them).
    tables
        .into_iter()
        .map(|t| t.policy_form(PolicyForm::Function))
        .collect()
}

/// The SECURITY DEFINER lookup of an API key by its public prefix.
pub const API_KEY_LOOKUP: (&str, &str) = (TENANCY_SCHEMA, "api_key_lookup");

pub(crate) fn role(plan: &mut MigrationPlan, name: &str) {
    let create = Role::create()
        .name(Alias::new(name))
        .no_login()
        .inherit()
        .if_not_exists()
        .to_owned();
    plan.step(
        format!("role {name} (NOLOGIN, NOBYPASSRLS)"),
        &create,
        &create.reverse(),
    );
}

fn policy(
    name: &str,
    schema: &str,
    table: &str,
    command: PolicyCommand,
    role: &str,
) -> PolicyCreateStatement {
    Policy::create()
        .name(Alias::new(name))
        .table(t(schema, Alias::new(table)))
        .command(command)
        .to(Alias::new(role))
        .to_owned()
}

fn add_policy(plan: &mut MigrationPlan, p: PolicyCreateStatement) {
    let label = p.get_name().map(|n| n.to_string()).unwrap_or_default();
    plan.step(format!("policy {label}"), &p, &p.reverse());
}

pub(crate) fn grant(
    plan: &mut MigrationPlan,
    privileges: Vec<Privilege>,
    object: GrantObject,
    role: &str,
) {
    let g = Grant::privileges(privileges)
        .on(object)
        .to(Alias::new(role))
        .to_owned();
    plan.step(format!("grant to {role}"), &g, &g.reverse());
}

fn secure_global_table(plan: &mut MigrationPlan, schema: &str, table: &str) {
    let tr = t(schema, Alias::new(table));
    let enable = RowLevelSecurity::enable(tr.clone());
    plan.step(
        format!("{schema}.{table}: enable row level security"),
        &enable,
        &enable.reverse(),
    );
    let force = RowLevelSecurity::force(tr);
    plan.step(
        format!("{schema}.{table}: force row level security"),
        &force,
        &force.reverse(),
    );
}

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    plan_in(Set::Full)
}

/// The plan of this migration in the core-only set: no demo tables, `tenancy.users`.
pub fn core_plan() -> MigrationPlan {
    plan_in(Set::Core)
}

fn plan_in(set: Set) -> MigrationPlan {
    let users = set.users_schema();
    let mut plan = MigrationPlan::new();
    for name in [APP_ROLE, SUPERADMIN_ROLE, DEFINER_ROLE] {
        role(&mut plan, name);
    }
    // Functions the migration login creates later are not executable by PUBLIC unless granted
    // (per-schema default privileges can only add to the global ones, so this one is global).
    let defaults = DefaultPrivileges::revoke([Privilege::Execute])
        .on(DefaultObjects::Functions)
        .from_public()
        .to_owned();
    plan.step(
        "default privileges: no EXECUTE for PUBLIC in tenancy",
        &defaults,
        &defaults.reverse(),
    );
    for role in [APP_ROLE, SUPERADMIN_ROLE, DEFINER_ROLE] {
        for schema in [TENANCY_SCHEMA, APP_SCHEMA] {
            grant(
                &mut plan,
                vec![Privilege::Usage],
                GrantObject::schema(Alias::new(schema)),
                role,
            );
        }
        for f in [
            "current_tenant_id",
            "current_user_id",
            "current_superadmin_reason",
        ] {
            grant(
                &mut plan,
                vec![Privilege::Execute],
                GrantObject::function((TENANCY_SCHEMA, f), Vec::<&str>::new()),
                role,
            );
        }
    }

    // Referencing tables first: securing `tenants` first would hold its lock while a legacy
    // INSERT into `projects` (holding its row lock there) waits for it in its foreign-key check,
    // a lock-order deadlock with a live writer (seen in `cargo xtask bench`, scenario 3).
    // The legacy role's policies come later, with the role (m0008_legacy_role).
    for table in tenant_tables_in(set) {
        plan.extend(table.without_legacy().security_plan());
    }

    // tenants: the app reads its own tenant only; the definer reads status for authentication.
    secure_global_table(&mut plan, TENANCY_SCHEMA, "tenants");
    add_policy(
        &mut plan,
        policy(
            "tenants_app_select",
            TENANCY_SCHEMA,
            "tenants",
            PolicyCommand::Select,
            APP_ROLE,
        )
        .using(Expr::col(Alias::new("id")).eq(current_tenant_id()))
        .to_owned(),
    );
    add_policy(
        &mut plan,
        policy(
            "tenants_superadmin_all",
            TENANCY_SCHEMA,
            "tenants",
            PolicyCommand::All,
            SUPERADMIN_ROLE,
        )
        .using(superadmin_predicate())
        .with_check(superadmin_predicate())
        .to_owned(),
    );
    add_policy(
        &mut plan,
        policy(
            "tenants_definer_select",
            TENANCY_SCHEMA,
            "tenants",
            PolicyCommand::Select,
            DEFINER_ROLE,
        )
        .using(Expr::cust("true"))
        .to_owned(),
    );
    grant(
        &mut plan,
        vec![Privilege::Select],
        GrantObject::table(t(TENANCY_SCHEMA, Alias::new("tenants"))),
        APP_ROLE,
    );
    grant(
        &mut plan,
        vec![Privilege::Select],
        GrantObject::table(t(TENANCY_SCHEMA, Alias::new("tenants"))),
        DEFINER_ROLE,
    );
    grant(
        &mut plan,
        vec![
            Privilege::Select,
            Privilege::Insert,
            Privilege::Update,
            Privilege::Delete,
        ],
        GrantObject::table(t(TENANCY_SCHEMA, Alias::new("tenants"))),
        SUPERADMIN_ROLE,
    );

    // users stay global: the app sees the acting user and the members of its tenant, read-only.
    let is_member = Function::create()
        .name((TENANCY_SCHEMA, "is_current_tenant_member"))
        .or_replace()
        .arg("p_user_id", "uuid")
        .returns("boolean")
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_invoker()
        .body(
            "SELECT EXISTS (SELECT FROM tenancy.tenant_users m \
             WHERE m.tenant_id = tenancy.current_tenant_id() AND m.user_id = p_user_id)",
        )
        .to_owned();
    plan.step(
        "function tenancy.is_current_tenant_member(uuid)",
        &is_member,
        &is_member.reverse(),
    );
    for role in [APP_ROLE, SUPERADMIN_ROLE] {
        grant(
            &mut plan,
            vec![Privilege::Execute],
            GrantObject::function((TENANCY_SCHEMA, "is_current_tenant_member"), ["uuid"]),
            role,
        );
    }
    secure_global_table(&mut plan, users, "users");
    add_policy(
        &mut plan,
        policy(
            "users_app_select",
            users,
            "users",
            PolicyCommand::Select,
            APP_ROLE,
        )
        .using(
            Expr::col(Alias::new("id"))
                .eq(Expr::cust("tenancy.current_user_id()"))
                .or(Expr::cust("tenancy.is_current_tenant_member(id)")),
        )
        .to_owned(),
    );
    add_policy(
        &mut plan,
        policy(
            "users_superadmin_all",
            users,
            "users",
            PolicyCommand::All,
            SUPERADMIN_ROLE,
        )
        .using(superadmin_predicate())
        .with_check(superadmin_predicate())
        .to_owned(),
    );
    grant(
        &mut plan,
        vec![Privilege::Select],
        GrantObject::table(t(users, Alias::new("users"))),
        APP_ROLE,
    );
    grant(
        &mut plan,
        vec![
            Privilege::Select,
            Privilege::Insert,
            Privilege::Update,
            Privilege::Delete,
        ],
        GrantObject::table(t(users, Alias::new("users"))),
        SUPERADMIN_ROLE,
    );

    // The superadmin trail: append-only, and only for the superadmin.
    secure_global_table(&mut plan, TENANCY_SCHEMA, "superadmin_audit_logs");
    for (suffix, command) in [
        ("select", PolicyCommand::Select),
        ("insert", PolicyCommand::Insert),
    ] {
        let mut p = policy(
            &format!("superadmin_audit_logs_superadmin_{suffix}"),
            TENANCY_SCHEMA,
            "superadmin_audit_logs",
            command,
            SUPERADMIN_ROLE,
        );
        if command == PolicyCommand::Select {
            p.using(superadmin_predicate());
        } else {
            p.with_check(superadmin_predicate());
        }
        add_policy(&mut plan, p);
    }
    grant(
        &mut plan,
        vec![Privilege::Select, Privilege::Insert],
        GrantObject::table(t(TENANCY_SCHEMA, Alias::new("superadmin_audit_logs"))),
        SUPERADMIN_ROLE,
    );

    api_key_lookup(&mut plan);
    plan
}

/// The API-key lookup: the only way to find a key before its tenant is known. It needs the
/// SHA-256 of the presented secret as well as the public prefix, so knowing another tenant's
/// prefix reveals nothing. It runs as
/// `tenantry_definer`, which may read `api_keys` and `tenants` and nothing else, pins its
/// search_path, and is executable by the app role only.
fn api_key_lookup(plan: &mut MigrationPlan) {
    add_policy(
        plan,
        policy(
            "api_keys_definer_select",
            TENANCY_SCHEMA,
            "api_keys",
            PolicyCommand::Select,
            DEFINER_ROLE,
        )
        .using(Expr::cust("true"))
        .to_owned(),
    );
    grant(
        plan,
        vec![Privilege::Select],
        GrantObject::table(t(TENANCY_SCHEMA, Alias::new("api_keys"))),
        DEFINER_ROLE,
    );
    let lookup = Function::create()
        .name(API_KEY_LOOKUP)
        .or_replace()
        .arg("p_prefix", "text")
        .arg("p_secret_hash", "bytea")
        .returns_table([
            ("tenant_id", "uuid"),
            ("key_id", "uuid"),
            ("secret_hash", "bytea"),
            ("scopes", "text[]"),
            ("rate_limit_per_minute", "integer"),
            ("monthly_quota", "bigint"),
            ("expires_at", "timestamptz"),
            ("revoked_at", "timestamptz"),
            ("tenant_status", "text"),
        ])
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_definer()
        .set_search_path(["pg_catalog", "pg_temp"])
        .body(
            "SELECT k.tenant_id, k.id, k.secret_hash, k.scopes, k.rate_limit_per_minute, \
             k.monthly_quota, k.expires_at, k.revoked_at, t.status \
             FROM tenancy.api_keys k JOIN tenancy.tenants t ON t.id = k.tenant_id \
             WHERE k.prefix = p_prefix AND k.secret_hash = p_secret_hash",
        )
        .to_owned();
    plan.step(
        "function tenancy.api_key_lookup(text, bytea) SECURITY DEFINER",
        &lookup,
        &lookup.reverse(),
    );
    let revoke = Revoke::privileges([Privilege::Execute])
        .on(GrantObject::function(API_KEY_LOOKUP, ["text", "bytea"]))
        .from_public()
        .to_owned();
    plan.step(
        "revoke EXECUTE on api_key_lookup from PUBLIC",
        &revoke,
        &revoke.reverse(),
    );
    grant(
        plan,
        vec![Privilege::Execute],
        GrantObject::function(API_KEY_LOOKUP, ["text", "bytea"]),
        APP_ROLE,
    );
    // Handing the function to the definer role needs membership in it (PostgreSQL's rule for
    // ALTER ... OWNER); the migration login takes it for this step and gives it back on down.
    let member = format!("GRANT {} TO CURRENT_USER", ident(DEFINER_ROLE));
    let unmember = format!("REVOKE {} FROM CURRENT_USER", ident(DEFINER_ROLE));
    plan.push(SqlStep {
        label: format!("migration login joins {DEFINER_ROLE} to hand it the function"),
        up: vec![probes::raw(member)],
        down: vec![probes::raw(unmember)],
        done_when: None,
        transactional: true,
    });
    // ... and the new owner needs CREATE on the schema at that moment, which it keeps no longer.
    let owner = OwnerAlter::function(
        API_KEY_LOOKUP.0,
        API_KEY_LOOKUP.1,
        &["text", "bytea"],
        DEFINER_ROLE,
    );
    let create = Grant::privileges([Privilege::Create])
        .on(GrantObject::schema(Alias::new(TENANCY_SCHEMA)))
        .to(Alias::new(DEFINER_ROLE))
        .to_owned();
    plan.push(SqlStep {
        label: "api_key_lookup runs as tenantry_definer".into(),
        up: vec![pg(&create), pg(&owner), pg(&create.reverse())],
        down: vec![pg(&owner.reverse())],
        done_when: None,
        transactional: true,
    });
}
