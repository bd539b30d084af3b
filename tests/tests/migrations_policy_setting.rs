//! m0017 and `ts0002_policy_setting`: every policy of the form `<column> =
//! tenancy.current_tenant_id()` reads `tenantry.tenant_id` itself, in the shared schemas, a
//! user's tables adopted before them, and each dedicated tenant's schema (migrated per schema);
//! a policy of any other shape is left alone; `down` restores the function's form outside the
//! dedicated schemas; and a rewritten policy still isolates, with no rows without a context.

mod common;
mod service_support;

use anyhow::ensure;
use migration::dedicated::{TenantSchema, migrate, tenant_schema_migrations};
use migration::run::Command;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait};
use service::tenants::Isolation;
use service_support::*;
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

/// `pg_get_expr` of the function's form, as m0002..m0016 created it.
const FUNCTION_FORM: &str = "tenancy.current_tenant_id()";
/// The setting's form, as `pg_get_expr` shows it under the default path.
const SETTING_FORM: &str =
    "(NULLIF(current_setting('tenantry.tenant_id'::text, true), ''::text))::uuid";

/// `schema.table policy: USING | WITH CHECK` of every policy on a table of `schemas` (a
/// `LIKE` pattern over the schema name), in name order.
async fn policies(su: &DatabaseConnection, schemas: &str) -> anyhow::Result<Vec<String>> {
    let rows = su
        .query_all_raw(stmt(
            "SELECT n.nspname || '.' || c.relname || ' ' || p.polname || ': ' || \
               coalesce(pg_get_expr(p.polqual, p.polrelid), '-') || ' | ' || \
               coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-') \
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname LIKE $1 ORDER BY 1",
            [schemas.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?)
}

/// The policies of `schemas` that still call the function.
async fn calling_the_function(
    su: &DatabaseConnection,
    schemas: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(policies(su, schemas)
        .await?
        .into_iter()
        .filter(|p| p.contains(FUNCTION_FORM))
        .collect())
}

/// How many policies of `schemas` read the setting.
async fn reading_the_setting(su: &DatabaseConnection, schemas: &str) -> anyhow::Result<usize> {
    Ok(policies(su, schemas)
        .await?
        .iter()
        .filter(|p| p.contains(SETTING_FORM))
        .count())
}

/// Runs one runner command as the owner, as the CLI does.
async fn run_as_owner(env: &Env, command: Command) -> anyhow::Result<()> {
    let conn = migration::run::connect(&env.db.url(LoginRole::Owner)).await?;
    migration::run::run(&conn, command).await?;
    conn.close().await?;
    Ok(())
}

/// A dedicated tenant's schema, provisioned now (from the stored templates).
async fn dedicated(env: &Env, slug: &str) -> anyhow::Result<TenantSchema> {
    let owner = user(&env.svc, &format!("o@{slug}.test"), "O").await?;
    let (id, _) = tenant_with(&env.svc, slug, owner, Isolation::Dedicated).await?;
    Ok(TenantSchema::for_tenant(id))
}

/// The rows of `public.invoices` the app login sees with `tenant` as its context (none set
/// when `None`).
async fn invoices_seen(app: &DatabaseConnection, tenant: Option<Uuid>) -> anyhow::Result<i64> {
    let txn = app.begin().await?;
    if let Some(t) = tenant {
        txn.execute_raw(stmt(
            "SELECT pg_catalog.set_config('tenantry.tenant_id', $1, true)",
            [t.to_string().into()],
        ))
        .await?;
    }
    let n = scalar(&txn, "SELECT count(*) FROM public.invoices", []).await?;
    txn.commit().await?;
    Ok(n)
}

#[tokio::test]
async fn every_policy_of_the_functions_form_reads_the_setting_and_still_isolates()
-> anyhow::Result<()> {
    let env = env().await?;

    // A fresh database: no policy calls the function; ours in both schemas read the setting
    // (`tenancy.tenants` included, on `id`).
    ensure!(
        calling_the_function(&env.su, "%").await?.is_empty(),
        "{:?}",
        calling_the_function(&env.su, "%").await?
    );
    ensure!(reading_the_setting(&env.su, "public").await? == 12);
    ensure!(
        policies(&env.su, "tenancy")
            .await?
            .iter()
            .any(|p| p == &format!("tenancy.tenants tenants_app_select: (id = {SETTING_FORM}) | -")),
        "{:?}",
        policies(&env.su, "tenancy").await?
    );

    // A dedicated schema provisioned as before this release (its templates only ts0001's)
    // keeps the function's form until `up` migrates it; one provisioned after gets the
    // setting's form from the stored templates.
    env.su
        .execute_unprepared(
            "DELETE FROM tenancy.tenant_schema_steps WHERE migration = 'ts0002_policy_setting'",
        )
        .await?;
    let old = dedicated(&env, "policy-old").await?;
    let old_schema = old.as_str().to_owned();
    ensure!(calling_the_function(&env.su, &old_schema).await?.len() == 24);
    ensure!(reading_the_setting(&env.su, &old_schema).await? == 0);
    // A table of its own there too (not one of ts0001's): ts0002 rewrites every table of the
    // schema.
    let owner = env.db.connect(LoginRole::Owner, 2).await?;
    owner
        .execute_unprepared(&format!(
            "CREATE TABLE {old_schema}.extra (tenant_id uuid NOT NULL); \
             ALTER TABLE {old_schema}.extra ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY extra_app_select ON {old_schema}.extra FOR SELECT TO tenantry_app \
               USING (tenant_id = tenancy.current_tenant_id())"
        ))
        .await?;
    let report = migrate::up(&owner, &tenant_schema_migrations(), 2).await?;
    ensure!(
        (report.migrated, report.failed.len()) == (1, 0),
        "{report:?}"
    );
    ensure!(calling_the_function(&env.su, &old_schema).await?.is_empty());
    ensure!(reading_the_setting(&env.su, &old_schema).await? == 25);
    let late = dedicated(&env, "policy-late").await?;
    ensure!(
        calling_the_function(&env.su, late.as_str())
            .await?
            .is_empty()
    );
    ensure!(reading_the_setting(&env.su, late.as_str()).await? == 24);

    // A user's table adopted before this release: a policy of the function's form, and one of
    // another shape that happens to call the function too.
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, slug) in [(a, "policy-a"), (b, "policy-b")] {
        env.su
            .execute_raw(stmt(
                "INSERT INTO tenancy.tenants (id, slug, name) VALUES ($1, $2, $2)",
                [id.into(), slug.into()],
            ))
            .await?;
    }
    owner
        .execute_unprepared(
            "CREATE TABLE public.invoices (tenant_id uuid NOT NULL, id uuid NOT NULL, \
               PRIMARY KEY (tenant_id, id)); \
             ALTER TABLE public.invoices ENABLE ROW LEVEL SECURITY; \
             ALTER TABLE public.invoices FORCE ROW LEVEL SECURITY; \
             CREATE POLICY invoices_app_select ON public.invoices FOR SELECT TO tenantry_app \
               USING (tenant_id = tenancy.current_tenant_id()); \
             CREATE POLICY invoices_app_insert ON public.invoices FOR INSERT TO tenantry_app \
               WITH CHECK (tenant_id = tenancy.current_tenant_id() \
                 AND tenancy.current_tenant_id() IS NOT NULL); \
             GRANT SELECT, INSERT ON public.invoices TO tenantry_app",
        )
        .await?;
    // And a user's table the migration login may not alter (another role's): left as it is.
    env.su
        .execute_unprepared(
            "CREATE TABLE public.notes (tenant_id uuid NOT NULL); \
             ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY; \
             CREATE POLICY notes_app_select ON public.notes FOR SELECT TO tenantry_app \
               USING (tenant_id = tenancy.current_tenant_id())",
        )
        .await?;
    env.su
        .execute_raw(stmt(
            "INSERT INTO public.invoices SELECT t, gen_random_uuid() \
             FROM unnest(ARRAY[$1, $1, $1, $2]::uuid[]) t",
            [a.into(), b.into()],
        ))
        .await?;

    // What a session or an operator may leave in the way, none of which may stop the rewrite or
    // make it a silent no-op: an app connection holding a temporary table with a policy of
    // either form (in a schema of its own the runner may not use), the runner's login quoting
    // every identifier and reading backslashes in literals as escapes by default, and a policy
    // applying to a role that may not execute the function (left: the function's form refuses
    // that role, the setting's would not).
    let app = env.db.connect(LoginRole::App, 1).await?;
    app.execute_unprepared(
        "CREATE TEMP TABLE trap (tenant_id uuid); \
         ALTER TABLE trap ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY trap_function ON trap USING (tenant_id = tenancy.current_tenant_id()); \
         CREATE POLICY trap_setting ON trap USING (tenant_id = \
           NULLIF(pg_catalog.current_setting('tenantry.tenant_id', true), '')::pg_catalog.uuid)",
    )
    .await?;
    env.su
        .execute_unprepared(
            "DO $$ BEGIN EXECUTE format('ALTER ROLE tenantry_owner IN DATABASE %I \
               SET quote_all_identifiers = on', current_database()); \
               EXECUTE format('ALTER ROLE tenantry_owner IN DATABASE %I \
               SET standard_conforming_strings = off', current_database()); END $$; \
             REVOKE EXECUTE ON FUNCTION tenancy.current_tenant_id() FROM PUBLIC; \
             GRANT EXECUTE ON FUNCTION tenancy.current_tenant_id() TO tenantry_app; \
             CREATE POLICY invoices_public_select ON public.invoices FOR SELECT TO PUBLIC \
               USING (tenant_id = tenancy.current_tenant_id())",
        )
        .await?;

    // `down` restores the function's form in the shared schemas and leaves the dedicated ones
    // (down to just before m0017, however many migrations come after it).
    let since_m0017 = common::migrations_since("m0017_policy_setting")?;
    run_as_owner(&env, Command::Down(Some(since_m0017))).await?;
    ensure!(reading_the_setting(&env.su, "public").await? == 0);
    ensure!(reading_the_setting(&env.su, "tenancy").await? == 0);
    ensure!(calling_the_function(&env.su, "public").await?.len() == 16);
    ensure!(reading_the_setting(&env.su, &old_schema).await? == 25);

    // `up` again: every policy of exactly the function's form reads the setting, the user's
    // adopted one included; the other shape, and the table of another role, are left as they
    // were, and `up` goes on.
    // Through the CLI, as an operator runs it: what is left is named in its output.
    let up = common::run_cli(&env.db.url(LoginRole::Owner), &["up"])?;
    ensure!(up.success, "{up:?}");
    let output = format!("{}{}", up.stdout, up.stderr);
    for left in [
        "invoices_public_select on public.invoices",
        "notes_app_select on public.notes",
    ] {
        ensure!(
            output.contains(&format!("policy {left} left as it is")),
            "{left}: {output}"
        );
    }
    ensure!(reading_the_setting(&env.su, "public").await? == 13);
    let left: Vec<_> = calling_the_function(&env.su, "%")
        .await?
        .into_iter()
        .filter(|p| !p.starts_with("pg_temp"))
        .collect();
    ensure!(
        left.len() == 3
            && left[0].starts_with("public.invoices invoices_app_insert: - | ")
            && left[1].starts_with("public.invoices invoices_public_select: ")
            && left[2].starts_with("public.notes notes_app_select: "),
        "{left:?}"
    );
    // The temporary table's policies are as its session made them.
    let trap = policies(&env.su, "pg_temp%").await?;
    ensure!(
        trap.len() == 2 && trap[0].contains(FUNCTION_FORM) && trap[1].contains(SETTING_FORM),
        "{trap:?}"
    );

    // The rewritten policy isolates: each tenant its rows, none without a context.
    ensure!(invoices_seen(&app, Some(a)).await? == 3);
    ensure!(invoices_seen(&app, Some(b)).await? == 1);
    ensure!(invoices_seen(&app, None).await? == 0);
    ensure!(invoices_seen(&app, Some(Uuid::new_v4())).await? == 0);
    Ok(())
}
