//! The two tenant filters (the policy's `tenant_id = NULLIF(current_setting('tenantry.tenant_id',
//! true), '')::uuid`, m0017's form, and the service's own `tenant_id = $1`) are planned at the
//! cost of one: a single index condition on
//! `tenant_id`, and the policy's comparison as a one-time filter evaluated once per execution,
//! never per row. Checked on the plans of the service's own count and list statements, generic
//! and custom, as the app login under RLS.

mod service_support;

use anyhow::{Result, ensure};
use entity::projects;
use sea_orm::{ConnectionTrait, DbBackend, PaginatorTrait, QueryTrait, Statement};
use service_support::{env, project, three_tenants};

/// EXPLAIN of `stmt` inside `tx`, one line per row.
async fn explain(tx: &service::TenantTx, stmt: &Statement) -> Result<Vec<String>> {
    let explained = Statement {
        sql: format!("EXPLAIN (COSTS OFF) {}", stmt.sql),
        ..stmt.clone()
    };
    let rows = tx.conn().query_all_raw(explained).await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<String>(0).ok())
        .collect())
}

#[tokio::test]
async fn the_policy_and_the_service_filter_cost_one_index_condition() -> Result<()> {
    let env = env().await?;
    let [a, b, _] = three_tenants(&env.svc).await?;
    for i in 0..3 {
        project(&env.svc, &a.ctx, &format!("a{i}")).await?;
        project(&env.svc, &b.ctx, &format!("b{i}")).await?;
    }
    let tx = env.svc.begin(&a.ctx).await?;
    // A three-row table would be read sequentially; the shape under test is the index plan.
    tx.conn()
        .execute_unprepared("SET LOCAL enable_seqscan = off")
        .await?;
    let list = tx.select::<projects::Entity>().build(DbBackend::Postgres);
    // What `TenantTx::count` sends (SeaORM's paginator wraps the select).
    let count = Statement {
        sql: format!(
            "SELECT COUNT(*) AS num_items FROM ({}) AS sub_query",
            list.sql
        ),
        ..list.clone()
    };
    ensure!(
        list.sql.contains("$1"),
        "the service binds its tenant: {}",
        list.sql
    );
    for mode in ["force_generic_plan", "force_custom_plan"] {
        tx.conn()
            .execute_unprepared(&format!("SET LOCAL plan_cache_mode = {mode}"))
            .await?;
        for stmt in [&list, &count] {
            let plan = explain(&tx, stmt).await?;
            let text = plan.join("\n");
            let index_conds: Vec<_> = plan.iter().filter(|l| l.contains("Index Cond")).collect();
            ensure!(
                index_conds.len() == 1 && index_conds[0].contains("tenant_id"),
                "one index condition on tenant_id ({mode}):\n{text}"
            );
            ensure!(
                !plan
                    .iter()
                    .any(|l| l.contains("Filter:") && !l.contains("One-Time Filter:")),
                "no per-row filter ({mode}):\n{text}"
            );
            ensure!(
                plan.iter()
                    .filter(|l| l.contains("One-Time Filter:") && l.contains("current_setting"))
                    .count()
                    == 1,
                "the policy's check is evaluated once ({mode}):\n{text}"
            );
        }
    }
    // And the rows are the tenant's: the count the service itself runs.
    ensure!(tx.select::<projects::Entity>().count(tx.conn()).await? == 3);
    tx.rollback().await?;
    Ok(())
}
