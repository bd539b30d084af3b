//! Scenario 1: what row level security costs a read.
//!
//! The app login's role runs each query inside a transaction whose tenant is set with
//! `SET LOCAL` (untimed), relying on the policy alone and, separately, with the explicit
//! `WHERE tenant_id = $1` the service always adds. The baseline is the same query with the
//! explicit WHERE run by the bootstrap superuser, which bypasses RLS, in the same
//! transaction on the same connection (`SET LOCAL ROLE` / `RESET ROLE` between the variants,
//! untimed). The three variants alternate within every iteration, so drift on the machine
//! hits them alike; four rounds on fresh connections are pooled.
//!
//! Then, once, the naive policy: a VOLATILE plpgsql function called per row, on a scratch copy
//! of the table in a separate database.

use std::time::{Duration, Instant};

use migration::names::APP_ROLE;
use sea_orm::{ConnectionTrait, DatabaseConnection, TransactionTrait, Value};
use tenantry_tests::databases::connect;
use tenantry_tests::logins::{APP_LOGIN, LoginRole};
use uuid::Uuid;

use super::Params;
use super::report::{Cmp, Explain, Row, Scenario};
use super::setup::{
    Fixture, drop_db, exec_text, load_projects, rows, sample_keys, snippet, text_lines,
};
use super::stats::{Rng, Stat};

pub const TITLE: &str = "RLS read overhead (app role under RLS vs. superuser with WHERE tenant_id)";

struct Query {
    label: &'static str,
    /// Relies on the policy alone; binds the id when `by_id`.
    rls: &'static str,
    /// Explicit `WHERE tenant_id = $1` (and `id = $2`).
    explicit: &'static str,
    by_id: bool,
}

fn queries(table: &str) -> Vec<(Query, String, String)> {
    let qs = [
        Query {
            label: "(a) 50 most recent rows",
            rls: "SELECT * FROM {t} ORDER BY created_at DESC LIMIT 50",
            explicit: "SELECT * FROM {t} WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 50",
            by_id: false,
        },
        Query {
            label: "(b) one row by id",
            rls: "SELECT * FROM {t} WHERE id = $1",
            explicit: "SELECT * FROM {t} WHERE tenant_id = $1 AND id = $2",
            by_id: true,
        },
        Query {
            label: "(c) count a tenant's rows",
            rls: "SELECT count(*) FROM {t}",
            explicit: "SELECT count(*) FROM {t} WHERE tenant_id = $1",
            by_id: false,
        },
    ];
    qs.into_iter()
        .map(|q| {
            let rls = q.rls.replace("{t}", table);
            let explicit = q.explicit.replace("{t}", table);
            (q, rls, explicit)
        })
        .collect()
}

/// What a query returned, to check that all variants see the same rows.
fn fingerprint(rows: &[sea_orm::QueryResult], count_query: bool) -> i64 {
    if count_query {
        rows.first()
            .and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .unwrap_or(-1)
    } else {
        rows.len() as i64
    }
}

async fn timed<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<Value>,
    count_query: bool,
) -> anyhow::Result<(Duration, i64)> {
    let t = Instant::now();
    let r = rows(db, sql, values).await?;
    Ok((t.elapsed(), fingerprint(&r, count_query)))
}

fn set_local(tenant: Uuid) -> String {
    format!("SET LOCAL tenantry.tenant_id = '{tenant}'")
}

#[derive(Default)]
struct Measured {
    rls: Vec<Duration>,
    rls_where: Vec<Duration>,
    base: Vec<Duration>,
    /// The explicit query as [`BYPASS_ROLE`]: the app's privileges without row level security.
    bypass: Vec<Duration>,
    mismatches: usize,
}

/// A role with the app's privileges (a member of `tenantry_app`) and `BYPASSRLS`: the second
/// baseline of scenario 1, which separates what row level security costs from what any
/// non-superuser pays (privilege checks the superuser skips).
const BYPASS_ROLE: &str = "tenantry_bench_bypassrls";

impl Measured {
    fn absorb(&mut self, other: Measured) {
        self.rls.extend(other.rls);
        self.rls_where.extend(other.rls_where);
        self.base.extend(other.base);
        self.bypass.extend(other.bypass);
        self.mismatches += other.mismatches;
    }
}

/// Runs each query `iterations` times per variant, all on one superuser connection inside one
/// transaction: the RLS variants after `SET LOCAL ROLE` to the app login (row level security
/// applies exactly as for that login), the baseline after `RESET ROLE` (a superuser bypasses
/// RLS). One backend for all variants, so neither gets a luckier process or CPU; the role
/// switches are untimed. Statement texts differ, so each variant keeps its own cached plan.
#[allow(clippy::too_many_arguments)]
async fn measure(
    su: &DatabaseConnection,
    samples: &[(Uuid, Uuid)],
    q: &Query,
    rls_sql: &str,
    explicit_sql: &str,
    iterations: usize,
    with_service_form: bool,
    seed: u64,
) -> anyhow::Result<Measured> {
    let count_query = rls_sql.contains("count(*)");
    let mut rng = Rng::new(seed);
    let txn = su.begin().await?;
    let service_sql = format!("{explicit_sql} /* as the app, under RLS */");
    let as_app = format!("SET LOCAL ROLE {APP_LOGIN}");
    let warmup = (iterations / 10).clamp(1, 100);
    let as_bypass = format!("SET LOCAL ROLE {BYPASS_ROLE}");
    // Its own text, so its own cached plan: a plan cached for a table with row level security
    // depends on the role, and one statement alternating between the superuser and this role
    // would be planned anew on every execution.
    let bypass_sql = format!("{explicit_sql} /* as {BYPASS_ROLE} */");
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    let mut mismatches = 0;
    for i in 0..warmup + iterations {
        let (tenant, id) = samples[rng.below(samples.len())];
        exec_text(&txn, &set_local(tenant)).await?;
        let rls_values: Vec<Value> = if q.by_id { vec![id.into()] } else { vec![] };
        let explicit_values: Vec<Value> = if q.by_id {
            vec![tenant.into(), id.into()]
        } else {
            vec![tenant.into()]
        };
        // Rotate the order of the variants from one iteration to the next.
        let mut results: [(Duration, i64); 4] = [(Duration::ZERO, 0); 4];
        for k in 0..4 {
            let which = (i + k) % 4;
            let (role, sql, values) = match which {
                0 => (as_app.as_str(), rls_sql, &rls_values),
                1 if with_service_form => (as_app.as_str(), service_sql.as_str(), &explicit_values),
                1 => continue,
                3 => (as_bypass.as_str(), bypass_sql.as_str(), &explicit_values),
                _ => ("RESET ROLE", explicit_sql, &explicit_values),
            };
            exec_text(&txn, role).await?;
            // Untimed, the same statement once more: the first statement after a switch to the
            // app login pays for the switch (a few µs on a hot row, docs/pgbench/findings.sh;
            // none after a switch to the superuser or the BYPASSRLS role), which no deployment
            // pays, since its connections log in as the app. It also makes the first touch of
            // the row every variant's alike.
            timed(&txn, sql, values.clone(), count_query).await?;
            results[which] = timed(&txn, sql, values.clone(), count_query).await?;
        }
        if results[0].1 != results[2].1
            || results[3].1 != results[2].1
            || (with_service_form && results[1].1 != results[2].1)
        {
            mismatches += 1;
        }
        if i >= warmup {
            a.push(results[0].0);
            b.push(results[1].0);
            c.push(results[2].0);
            d.push(results[3].0);
        }
    }
    txn.commit().await?;
    Ok(Measured {
        rls: a,
        rls_where: if with_service_form { b } else { vec![] },
        base: c,
        bypass: d,
        mismatches,
    })
}

async fn explain_as_app(
    app: &DatabaseConnection,
    tenant: Uuid,
    sql: &str,
) -> anyhow::Result<Vec<String>> {
    let txn = app.begin().await?;
    exec_text(&txn, &set_local(tenant)).await?;
    let lines = text_lines(
        &txn,
        &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}"),
    )
    .await?;
    txn.commit().await?;
    Ok(lines)
}

/// Inlines the bind values of an explicit query for EXPLAIN (both are `uuid`s we generated).
fn inline(sql: &str, tenant: Uuid, id: Uuid) -> String {
    sql.replace("$1", &format!("'{tenant}'"))
        .replace("$2", &format!("'{id}'"))
}

pub async fn run(p: &Params, fx: &Fixture) -> anyhow::Result<Scenario> {
    let mut sc = Scenario::new(1, TITLE);
    let mut mismatches = 0;
    // Several rounds, each on a fresh pair of connections (so neither side keeps a lucky or
    // unlucky backend), samples pooled.
    let rounds = if p.quick { 1 } else { 4 };
    {
        let su = connect(&fx.db.superuser_url(), 1).await?;
        exec_text(
            &su,
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{BYPASS_ROLE}') \
                 THEN CREATE ROLE {BYPASS_ROLE} NOLOGIN BYPASSRLS; END IF; END $$; \
                 GRANT {APP_ROLE} TO {BYPASS_ROLE}"
            ),
        )
        .await?;
        su.close().await?;
    }
    for (i, (q, rls_sql, explicit_sql)) in queries("public.projects").iter().enumerate() {
        tracing::info!(query = q.label, iterations = p.iterations, "scenario 1");
        let mut m = Measured::default();
        for r in 0..rounds {
            let su = connect(&fx.db.superuser_url(), 1).await?;
            m.absorb(
                measure(
                    &su,
                    &fx.samples,
                    q,
                    rls_sql,
                    explicit_sql,
                    p.iterations.div_ceil(rounds),
                    true,
                    11 + (i * 10 + r) as u64,
                )
                .await?,
            );
            su.close().await?;
        }
        mismatches += m.mismatches;
        let base = Stat::of(&m.base);
        sc.rows.push(
            Row::latency(
                format!("{}: policy only", q.label),
                &Stat::of(&m.rls),
                &base,
            )
            .target_ratio(Cmp::Le, 1.05),
        );
        sc.rows.push(
            Row::latency(
                format!("{}: policy + service's WHERE", q.label),
                &Stat::of(&m.rls_where),
                &base,
            )
            .target_ratio(Cmp::Le, 1.05),
        );
        sc.rows.push(
            Row::latency(
                format!(
                    "{}: policy + service's WHERE vs the app's privileges, no RLS",
                    q.label
                ),
                &Stat::of(&m.rls_where),
                &Stat::of(&m.bypass),
            )
            .note(format!(
                "baseline: the explicit query as {BYPASS_ROLE} (a member of {APP_ROLE}, \
                 BYPASSRLS): what row level security alone adds"
            )),
        );
    }
    let app = connect(&fx.db.url(LoginRole::App), 1).await?;
    let su = connect(&fx.db.superuser_url(), 1).await?;
    // Warm the plan caches of this connection for the report below.
    for (q, rls_sql, explicit_sql) in &queries("public.projects") {
        measure(&su, &fx.samples, q, rls_sql, explicit_sql, 20, true, 99).await?;
    }
    if mismatches > 0 {
        sc.notes.push(format!(
            "WARNING: in {mismatches} iterations the RLS variants returned other rows than the baseline"
        ));
    } else {
        sc.notes.push(
            "every iteration returned the same rows (or count) under RLS as the baseline".into(),
        );
    }
    // Which plans the prepared statements ran with: a custom plan is planned on every execution.
    {
        for r in rows(
            &su,
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
             WHERE statement LIKE '%public.projects%' \
             AND statement NOT LIKE '%pg_prepared_statements%' ORDER BY statement",
            vec![],
        )
        .await?
        {
            let stmt: String = r.try_get_by_index(0)?;
            let generic: i64 = r.try_get_by_index(1)?;
            let custom: i64 = r.try_get_by_index(2)?;
            sc.notes.push(format!(
                "plan cache: `{stmt}`: {generic} generic, {custom} custom plans"
            ));
        }
    }
    let (tenant, id) = fx.samples[0];
    let qs = queries("public.projects");
    sc.explain.push(Explain {
        title: "(a) under our policy (app login, SET LOCAL tenantry.tenant_id)".into(),
        lines: snippet(explain_as_app(&app, tenant, &qs[0].1).await?, 8),
    });
    sc.explain.push(Explain {
        title: "(a) baseline (superuser, explicit WHERE)".into(),
        lines: snippet(
            text_lines(
                &su,
                &format!(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {}",
                    inline(&qs[0].2, tenant, id)
                ),
            )
            .await?,
            8,
        ),
    });
    sc.explain.push(Explain {
        title: "(b) under our policy".into(),
        lines: snippet(
            explain_as_app(&app, tenant, &qs[1].1.replace("$1", &format!("'{id}'"))).await?,
            8,
        ),
    });
    sc.explain.push(Explain {
        title: "(c) under our policy".into(),
        lines: snippet(explain_as_app(&app, tenant, &qs[2].1).await?, 8),
    });
    app.close().await?;
    su.close().await?;

    if p.naive_rows > 0 {
        naive(p, &mut sc).await?;
    }
    sc.notes.push(
        "ratio = median under RLS / median of the baseline; each query is timed alone (BEGIN, \
         SET LOCAL and COMMIT are scenario 2's subject)"
            .into(),
    );
    Ok(sc)
}

/// The naive policy on a scratch copy in a database of its own.
async fn naive(p: &Params, sc: &mut Scenario) -> anyhow::Result<()> {
    let db = tenantry_tests::empty_db().await?;
    let su = connect(&db.superuser_url(), 1).await?;
    let tenants = p.tenants;
    tracing::info!(db = %db.name, rows = p.naive_rows, "scenario 1: naive policy scratch copy");
    exec_text(
        &su,
        "CREATE TABLE public.projects_naive (\
           tenant_id uuid NOT NULL, id uuid NOT NULL DEFAULT gen_random_uuid(), \
           owner_id uuid, name text NOT NULL, description text NOT NULL DEFAULT '', \
           status text NOT NULL DEFAULT 'active', metadata jsonb NOT NULL DEFAULT '{}', \
           created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    load_projects(&su, "public.projects_naive", tenants, p.naive_rows, false).await?;
    exec_text(
        &su,
        "ALTER TABLE public.projects_naive ADD PRIMARY KEY (tenant_id, id); \
         CREATE INDEX ON public.projects_naive (tenant_id); \
         CREATE INDEX ON public.projects_naive (tenant_id, created_at DESC)",
    )
    .await?;
    exec_text(&su, "VACUUM (ANALYZE) public.projects_naive").await?;
    // The anti-pattern: VOLATILE, plpgsql (never inlined), called bare in the policy, so it
    // runs once per row and can never be an index condition.
    exec_text(
        &su,
        &format!(
            "CREATE FUNCTION public.naive_current_tenant() RETURNS uuid LANGUAGE plpgsql VOLATILE AS \
             $$ BEGIN RETURN NULLIF(current_setting('tenantry.tenant_id', true), '')::uuid; END $$; \
             ALTER TABLE public.projects_naive ENABLE ROW LEVEL SECURITY; \
             ALTER TABLE public.projects_naive FORCE ROW LEVEL SECURITY; \
             CREATE POLICY naive_select ON public.projects_naive FOR SELECT \
               USING (tenant_id = public.naive_current_tenant()); \
             GRANT SELECT ON public.projects_naive TO {APP_LOGIN}, {BYPASS_ROLE}; \
             GRANT EXECUTE ON FUNCTION public.naive_current_tenant() TO {APP_LOGIN}"
        ),
    )
    .await?;
    let samples = sample_keys(&su, "public.projects_naive", 200).await?;
    let app = connect(&db.url(LoginRole::App), 1).await?;
    for (i, (q, rls_sql, explicit_sql)) in queries("public.projects_naive").iter().enumerate() {
        let m = measure(
            &su,
            &samples,
            q,
            rls_sql,
            explicit_sql,
            p.naive_iterations,
            false,
            101 + i as u64,
        )
        .await?;
        sc.rows.push(
            Row::latency(
                format!("{}: NAIVE policy (volatile fn per row)", q.label),
                &Stat::of(&m.rls),
                &Stat::of(&m.base),
            )
            .note("what not to do: shown once, no target"),
        );
    }
    let (tenant, _) = samples[0];
    let qs = queries("public.projects_naive");
    sc.explain.push(Explain {
        title: "(a) under the NAIVE policy `USING (tenant_id = naive_current_tenant())`, VOLATILE plpgsql".into(),
        lines: snippet(explain_as_app(&app, tenant, &qs[0].1).await?, 10),
    });
    sc.explain.push(Explain {
        title: "(c) under the NAIVE policy".into(),
        lines: snippet(explain_as_app(&app, tenant, &qs[2].1).await?, 10),
    });
    sc.notes.push(format!(
        "the naive policy ran on a {}-row scratch copy in database {} ({} iterations per query): a \
         VOLATILE function can be neither inlined nor used as an index condition, so every query \
         reads every row and calls the function once per row",
        p.naive_rows, db.name, p.naive_iterations
    ));
    app.close().await?;
    su.close().await?;
    drop_db(&db).await;
    Ok(())
}
