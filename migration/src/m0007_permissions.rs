//! Permissions: custom per-tenant roles (`tenancy.roles`, `role_permissions`, `member_roles`),
//! `tenancy.has_permission(resource, action)`, and the SECURITY DEFINER lookups the service
//! needs where row level security rightly hides the rows: signing in (`find_login`), adding a
//! member by address (`find_user_id_by_email`) and a tenant admin changing its own tenant's
//! name and settings (`update_current_tenant`).
//!
//! The three tables are created plain (no `tenant_id`) and each made tenant-scoped with one
//! [`TenantTable`] call: column, composite keys and references, indexes, RLS, policies, grants.

use sea_orm::sea_query::{Alias, ColumnDef, Expr, Index, Table, TableCreateStatement};

use crate::core_set::Set;
use crate::ddl::OwnerAlter;
use crate::dsl::{
    Function, FunctionCreateStatement, FunctionLanguage, Grant, GrantObject, Policy, PolicyCommand,
    Privilege, Revoke, Volatility,
};
use crate::names::{APP_ROLE, DEFINER_ROLE, SUPERADMIN_ROLE, TENANCY_SCHEMA};
use crate::plan::{MigrationPlan, SqlStep, pg};
use crate::tables::t;
use crate::tenant_table::{PolicyForm, TenantTable};

/// `tenancy.has_permission(text, text)`: SECURITY INVOKER, so row level security applies.
pub const HAS_PERMISSION: (&str, &str) = (TENANCY_SCHEMA, "has_permission");
/// `tenancy.find_login(citext)`: SECURITY DEFINER, the sign-in lookup.
pub const FIND_LOGIN: (&str, &str) = (TENANCY_SCHEMA, "find_login");
/// `tenancy.find_user_id_by_email(citext)`: SECURITY DEFINER, returns only an id.
pub const FIND_USER_ID_BY_EMAIL: (&str, &str) = (TENANCY_SCHEMA, "find_user_id_by_email");
/// `tenancy.update_current_tenant(text, jsonb)`: SECURITY DEFINER, name and settings of the
/// current tenant only.
pub const UPDATE_CURRENT_TENANT: (&str, &str) = (TENANCY_SCHEMA, "update_current_tenant");

const CITEXT: &str = "public.citext";

/// The tenant tables this migration adds, in dependency order; their policies as this
/// migration created them ([`PolicyForm::Function`], m0017 rewrites them).
pub fn tenant_tables() -> Vec<TenantTable> {
    vec![
        TenantTable::new(TENANCY_SCHEMA, "roles")
            .unique(&["name"])
            .without_legacy(),
        TenantTable::new(TENANCY_SCHEMA, "role_permissions")
            .composite_key(&["role_id", "resource", "action"])
            .without_created_at()
            .references("role_id", TENANCY_SCHEMA, "roles")
            .without_legacy(),
        TenantTable::new(TENANCY_SCHEMA, "member_roles")
            .composite_key(&["user_id", "role_id"])
            .without_created_at()
            .references_key("user_id", TENANCY_SCHEMA, "tenant_users", "user_id")
            .references("role_id", TENANCY_SCHEMA, "roles")
            .without_legacy(),
    ]
    .into_iter()
    .map(|t| t.policy_form(PolicyForm::Function))
    .collect()
}

fn token_check(column: &str) -> Expr {
    // A resource or action: a short lowercase token, or `*` for "any".
    Expr::cust(format!("{column} ~ '^([a-z0-9][a-z0-9_.:-]{{0,63}}|[*])$'"))
}

fn create_tables() -> Vec<TableCreateStatement> {
    let mut roles = Table::create();
    roles
        .table(t(TENANCY_SCHEMA, Alias::new("roles")))
        .col(
            ColumnDef::new("id")
                .uuid()
                .not_null()
                .primary_key()
                .default(Expr::cust("gen_random_uuid()")),
        )
        .col(
            ColumnDef::new("name")
                .text()
                .not_null()
                .check(Expr::cust("length(name) BETWEEN 1 AND 100")),
        )
        .col(ColumnDef::new("description").text().not_null().default(""))
        .col(
            ColumnDef::new("created_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::cust("now()")),
        );

    let mut role_permissions = Table::create();
    role_permissions
        .table(t(TENANCY_SCHEMA, Alias::new("role_permissions")))
        .col(ColumnDef::new("role_id").uuid().not_null())
        .col(
            ColumnDef::new("resource")
                .text()
                .not_null()
                .check(token_check("resource")),
        )
        .col(
            ColumnDef::new("action")
                .text()
                .not_null()
                .check(token_check("action")),
        )
        .primary_key(
            Index::create()
                .col(Alias::new("role_id"))
                .col(Alias::new("resource"))
                .col(Alias::new("action")),
        );

    let mut member_roles = Table::create();
    member_roles
        .table(t(TENANCY_SCHEMA, Alias::new("member_roles")))
        .col(ColumnDef::new("user_id").uuid().not_null())
        .col(ColumnDef::new("role_id").uuid().not_null())
        .primary_key(
            Index::create()
                .col(Alias::new("user_id"))
                .col(Alias::new("role_id")),
        );
    vec![roles, role_permissions, member_roles]
}

fn grant_execute(
    plan: &mut MigrationPlan,
    name: (&'static str, &'static str),
    args: &[&str],
    roles: &[&str],
) {
    for role in roles {
        let g = Grant::privileges([Privilege::Execute])
            .on(GrantObject::function(name, args.iter().copied()))
            .to(Alias::new(*role))
            .to_owned();
        plan.step(
            format!("grant EXECUTE on {}.{} to {role}", name.0, name.1),
            &g,
            &g.reverse(),
        );
    }
}

fn has_permission() -> FunctionCreateStatement {
    // owner, admin: everything; member: read and write; viewer: read. On top of that, any
    // permission of a custom role assigned to the member, where `*` matches any resource or
    // action. Reads through row level security, for the current tenant and user only; no user
    // (an API key, a job) means no membership and so false.
    Function::create()
        .name(HAS_PERMISSION)
        .or_replace()
        .arg("p_resource", "text")
        .arg("p_action", "text")
        .returns("boolean")
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_invoker()
        .body(
            "SELECT EXISTS (SELECT FROM tenancy.tenant_users m \
               WHERE m.tenant_id = tenancy.current_tenant_id() \
                 AND m.user_id = tenancy.current_user_id() \
                 AND (m.role IN ('owner', 'admin') \
                      OR (m.role = 'member' AND p_action IN ('read', 'write')) \
                      OR (m.role = 'viewer' AND p_action = 'read'))) \
             OR EXISTS (SELECT FROM tenancy.member_roles mr \
               JOIN tenancy.role_permissions rp \
                 ON rp.tenant_id = mr.tenant_id AND rp.role_id = mr.role_id \
               WHERE mr.tenant_id = tenancy.current_tenant_id() \
                 AND mr.user_id = tenancy.current_user_id() \
                 AND rp.resource IN (p_resource, '*') \
                 AND rp.action IN (p_action, '*'))",
        )
        .to_owned()
}

pub(crate) type DefinerFunction = (
    (&'static str, &'static str),
    FunctionCreateStatement,
    Vec<&'static str>,
);

/// The definer functions; the two lookups read the identity table in `users`.
pub(crate) fn definer_functions(users: &str) -> Vec<DefinerFunction> {
    let find_login = Function::create()
        .name(FIND_LOGIN)
        .or_replace()
        .arg("p_email", CITEXT)
        .returns_table([("user_id", "uuid"), ("password_hash", "text")])
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_definer()
        .set_search_path(["pg_catalog", "pg_temp"])
        // citext's `=` lives in public, which is not on the pinned search_path: name it, or
        // the comparison silently falls back to case-sensitive text equality.
        .body(format!(
            "SELECT u.id, u.password_hash FROM {users}.users u \
             WHERE u.email OPERATOR(public.=) p_email"
        ))
        .to_owned();
    let find_user = Function::create()
        .name(FIND_USER_ID_BY_EMAIL)
        .or_replace()
        .arg("p_email", CITEXT)
        .returns("uuid")
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Stable)
        .security_definer()
        .set_search_path(["pg_catalog", "pg_temp"])
        .body(format!(
            "SELECT u.id FROM {users}.users u WHERE u.email OPERATOR(public.=) p_email"
        ))
        .to_owned();
    let update_tenant = Function::create()
        .name(UPDATE_CURRENT_TENANT)
        .or_replace()
        .arg("p_name", "text")
        .arg("p_settings", "jsonb")
        .returns("boolean")
        .language(FunctionLanguage::Sql)
        .volatility(Volatility::Volatile)
        .security_definer()
        .set_search_path(["pg_catalog", "pg_temp"])
        // Only the tenant of the calling transaction, and only name and settings: the app
        // cannot change its own status, plan or slug.
        .body(
            "WITH changed AS (UPDATE tenancy.tenants \
               SET name = coalesce(p_name, name), settings = coalesce(p_settings, settings) \
               WHERE id = tenancy.current_tenant_id() RETURNING 1) \
             SELECT count(*) > 0 FROM changed",
        )
        .to_owned();
    vec![
        (FIND_LOGIN, find_login, vec![CITEXT]),
        (FIND_USER_ID_BY_EMAIL, find_user, vec![CITEXT]),
        (UPDATE_CURRENT_TENANT, update_tenant, vec!["text", "jsonb"]),
    ]
}

/// The plan of this migration (the identity table in `public`, before m0011).
pub fn plan() -> MigrationPlan {
    plan_in(Set::Full)
}

/// The plan of this migration in the core-only set (`tenancy.users`).
pub fn core_plan() -> MigrationPlan {
    plan_in(Set::Core)
}

fn plan_in(set: Set) -> MigrationPlan {
    let users = set.users_schema();
    let mut plan = MigrationPlan::new();
    for (create, table) in create_tables().into_iter().zip(tenant_tables()) {
        let (schema, name) = table.name();
        let drop = Table::drop().table(t(schema, Alias::new(name))).to_owned();
        plan.step(format!("table {schema}.{name}"), &create, &drop);
        plan.extend(table.plan());
    }

    let has_permission = has_permission();
    plan.step(
        "function tenancy.has_permission(text, text)",
        &has_permission,
        &has_permission.reverse(),
    );
    grant_execute(
        &mut plan,
        HAS_PERMISSION,
        &["text", "text"],
        &[APP_ROLE, SUPERADMIN_ROLE],
    );

    // What the definer may read and change, through its functions only.
    let users_definer = Policy::create()
        .name(Alias::new("users_definer_select"))
        .table(t(users, Alias::new("users")))
        .command(PolicyCommand::Select)
        .to(Alias::new(DEFINER_ROLE))
        .using(Expr::cust("true"))
        .to_owned();
    plan.step(
        "policy users_definer_select",
        &users_definer,
        &users_definer.reverse(),
    );
    let tenants_definer = Policy::create()
        .name(Alias::new("tenants_definer_update"))
        .table(t(TENANCY_SCHEMA, Alias::new("tenants")))
        .command(PolicyCommand::Update)
        .to(Alias::new(DEFINER_ROLE))
        .using(Expr::cust("true"))
        .with_check(Expr::cust("true"))
        .to_owned();
    plan.step(
        "policy tenants_definer_update",
        &tenants_definer,
        &tenants_definer.reverse(),
    );
    for (privilege, schema, table) in [
        (Privilege::Select, users, "users"),
        (Privilege::Update, TENANCY_SCHEMA, "tenants"),
    ] {
        let g = Grant::privileges([privilege])
            .on(GrantObject::table(t(schema, Alias::new(table))))
            .to(Alias::new(DEFINER_ROLE))
            .to_owned();
        plan.step(
            format!(
                "grant {} on {schema}.{table} to {DEFINER_ROLE}",
                privilege.as_str()
            ),
            &g,
            &g.reverse(),
        );
    }

    // The definer functions: pinned search_path, not executable by PUBLIC, EXECUTE for the app
    // only, owned by tenantry_definer (m0006 made the migration login a member of it, which
    // ALTER ... OWNER needs; the new owner also needs CREATE on the schema for that moment).
    let functions = definer_functions(users);
    for ((schema, name), f, args) in &functions {
        let label = format!(
            "function {schema}.{name}({}) SECURITY DEFINER",
            args.join(", ")
        );
        plan.step(label, f, &f.reverse());
    }
    for ((schema, name), _, args) in &functions {
        let revoke = Revoke::privileges([Privilege::Execute])
            .on(GrantObject::function(
                (*schema, *name),
                args.iter().copied(),
            ))
            .from_public()
            .to_owned();
        plan.step(
            format!("revoke EXECUTE on {schema}.{name} from PUBLIC"),
            &revoke,
            &revoke.reverse(),
        );
        grant_execute(&mut plan, (*schema, *name), args, &[APP_ROLE]);
    }
    let create = Grant::privileges([Privilege::Create])
        .on(GrantObject::schema(Alias::new(TENANCY_SCHEMA)))
        .to(Alias::new(DEFINER_ROLE))
        .to_owned();
    let owners: Vec<OwnerAlter> = functions
        .iter()
        .map(|((schema, name), _, args)| OwnerAlter::function(schema, name, args, DEFINER_ROLE))
        .collect();
    let mut up = vec![pg(&create)];
    up.extend(owners.iter().map(pg));
    up.push(pg(&create.reverse()));
    plan.push(SqlStep {
        label: "find_login, find_user_id_by_email, update_current_tenant run as tenantry_definer"
            .into(),
        up,
        down: owners.iter().rev().map(|o| pg(&o.reverse())).collect(),
        done_when: None,
        transactional: true,
    });
    // Last in `up` order, so `down` checks it before dropping anything.
    plan.guard(crate::guards::keep_assignments(&tenant_tables()));
    plan
}
