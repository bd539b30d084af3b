//! The dedicated-tenant leg of the matrix: two dedicated tenants (provisioned through
//! `tenancy.provision_dedicated` when the database has fewer), then, as the app login inside
//! tenant A's transaction (entered exactly as the service enters it), every way across to
//! tenant B's schema, for every table discovered in A's schema.
//!
//! | attack | passes when |
//! |---|---|
//! | `own_rows` | A sees its own rows through the unqualified name (the other cells are not vacuous) |
//! | `outside_tx` | the app login, with no tenant transaction, reads A's schema: permission denied |
//! | `qualified_read` / `qualified_write` | `t_b.table` from A's transaction: permission denied |
//! | `search_path` | `SET LOCAL search_path = t_b, public`: no row of B |
//! | `set_role` | `SET LOCAL ROLE t_b`: no row of B visible, no row of B changed |
//! | `pg_temp` | a temporary table of the same name holding B's id does not shadow A's table |
//! | `pg_temp_session` | a session-lived temporary table A leaves on the pooled connection (committed, granted to PUBLIC, holding A's id) does not shadow the table in the next transaction of a shared tenant on that connection (n/a for a table `public` does not have) |
//! | `view_across` | `CREATE VIEW t_a.x AS SELECT ... FROM t_b.table`: permission denied |
//! | `truncate` / `move_row` | A's own table: TRUNCATE refused; `SET tenant_id = B` refused |
//!
//! and [`pg_temp_type`], one row for the entry itself: `pg_temp_type` — on a fresh app
//! connection (so the schema entry is compiled there after the plant) A leaves a
//! temporary domain `pg_temp.text` whose CHECK calls a `pg_temp` hook, and a session
//! `search_path` without `pg_temp`; the next transaction, B's, entered like the service's,
//! has role `t_b` and `search_path = t_b, public, pg_temp`, and the hook never ran;
//! `pg_temp_uuid` — on that connection, with a domain `pg_temp.uuid` too, a transaction that
//! sets B's id without entering reads `tenancy.tenant_users` and calls
//! `tenancy.current_tenant_id()` (inlined with its cast where it is called, as the column
//! defaults do; the policies inlined it too before m0017 wrote its body into them): the hook
//! never ran.
//!
//! Then [`shared_cells`]: the shared leg's thirteen attacks ([`attacks::attack_table`]) on every
//! table of A's schema, as A in a transaction entered like the service's, with one row seeded
//! for A in A's schema and one for B both in B's schema and IN A's (seeded past the schema's
//! tenant pin, which is put back `NOT VALID`: the row a bug past the pin would leave, so every
//! cell meets a row only row level security hides), plus `copy_across` (`COPY t_b.table TO
//! STDOUT` from A's transaction: refused). "No context" there is `SET LOCAL ROLE t_a` with no
//! tenant id (not the bare app login, which the schema's privileges alone would stop).
//! `insert_other` writes a row carrying B's `tenant_id` into A's own table: row level security
//! must refuse it (42501); the schema's `CHECK (tenant_id = A)` alone does not pass the cell.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use uuid::Uuid;

use super::attacks::{self, attack_table, copy_to};
use super::catalog::{Table, discover_schema};
use super::outcome::{ContextMode, Outcome, sqlstate};
use super::report::{Cell, Row};
use super::seed::{Seeded, seed_schema};
use crate::HarnessError;
use crate::databases::connect;
use migration::dedicated::TenantSchema;

/// Two dedicated tenants and the tables of A's schema.
pub struct Dedicated {
    /// Tenant A and its schema.
    pub a: (Uuid, TenantSchema),
    /// Tenant B and its schema.
    pub b: (Uuid, TenantSchema),
    /// The tables with `tenant_id` in A's schema (those also exist in B's).
    pub tables: Vec<String>,
}

/// Finds two dedicated tenants (provisioning them as the superuser when fewer exist) and
/// gives each a project.
pub async fn discover(superuser: &DatabaseConnection) -> Result<Dedicated, DbErr> {
    let mut found = dedicated_tenants(superuser).await?;
    while found.len() < 2 {
        let id = Uuid::new_v4();
        let schema = TenantSchema::for_tenant(id);
        let txn = superuser.begin().await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO tenancy.tenants (id, name, slug, isolation, schema_name) \
             VALUES ($1, 'Isolation dedicated', $2, 'dedicated', $3)",
            [
                id.into(),
                format!("iso-{}", &id.simple().to_string()[..12]).into(),
                schema.as_str().into(),
            ],
        ))
        .await?;
        txn.execute_unprepared("SET LOCAL tenantry.superadmin_reason = 'test-isolation'")
            .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT tenancy.provision_dedicated($1)",
            [id.into()],
        ))
        .await?;
        txn.execute_unprepared(&format!(
            "INSERT INTO {schema}.projects (tenant_id, id, name) VALUES ('{id}', gen_random_uuid(), 'iso')"
        ))
        .await?;
        txn.commit().await?;
        found = dedicated_tenants(superuser).await?;
    }
    let (a, b) = (found[0].clone(), found[1].clone());
    let rows = superuser
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
            [a.1.as_str().into()],
        ))
        .await?;
    let tables = rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    Ok(Dedicated { a, b, tables })
}

async fn dedicated_tenants(
    superuser: &DatabaseConnection,
) -> Result<Vec<(Uuid, TenantSchema)>, DbErr> {
    let rows = superuser
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT t.id, t.schema_name FROM tenancy.tenants t \
             JOIN pg_namespace n ON n.nspname = t.schema_name \
             WHERE t.isolation = 'dedicated' ORDER BY t.created_at, t.id",
        ))
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let id: Uuid = r.try_get_by_index(0)?;
        let name: String = r.try_get_by_index(1)?;
        if let Ok(schema) = TenantSchema::parse(&name) {
            out.push((id, schema));
        }
    }
    Ok(out)
}

/// Runs `pre` then `last` as the app login in a transaction of `tenant` (entered like the
/// service does; no tenant: a bare transaction), then rolls back.
async fn run_as(
    app: &DatabaseConnection,
    tenant: Option<Uuid>,
    pre: &[String],
    last: &str,
    query: bool,
) -> Result<Outcome, DbErr> {
    let txn = app.begin().await?;
    let enter = tenant.map(|t| {
        format!(
            "SET LOCAL tenantry.tenant_id = '{t}'; {}",
            migration::names::ENTRY_CALL
        )
    });
    let mut outcome = None;
    for sql in enter.iter().chain(pre) {
        if let Err(e) = txn.execute_unprepared(sql).await {
            outcome = Some(Outcome::Refused {
                code: sqlstate(&e),
                message: e.to_string(),
            });
            break;
        }
    }
    let outcome = match outcome {
        Some(o) => o,
        None => {
            let stmt = Statement::from_string(DbBackend::Postgres, last.to_owned());
            let r = if query {
                txn.query_all_raw(stmt).await.map(Outcome::Rows)
            } else {
                txn.execute_raw(stmt)
                    .await
                    .map(|r| Outcome::Affected(r.rows_affected()))
            };
            r.unwrap_or_else(|e| Outcome::Refused {
                code: sqlstate(&e),
                message: e.to_string(),
            })
        }
    };
    txn.rollback().await?;
    Ok(outcome)
}

/// Runs `sql` as the app login in a transaction of `tenant` (entered like the service does)
/// and commits; the first refusal is returned (and the transaction rolled back).
async fn commit_as(
    app: &DatabaseConnection,
    tenant: Option<Uuid>,
    sql: &[String],
) -> Result<Option<Outcome>, DbErr> {
    let txn = app.begin().await?;
    let enter = tenant.map(|t| {
        format!(
            "SET LOCAL tenantry.tenant_id = '{t}'; {}",
            migration::names::ENTRY_CALL
        )
    });
    for s in enter.iter().chain(sql) {
        if let Err(e) = txn.execute_unprepared(s).await {
            txn.rollback().await?;
            return Ok(Some(Outcome::Refused {
                code: sqlstate(&e),
                message: e.to_string(),
            }));
        }
    }
    txn.commit().await?;
    Ok(None)
}

/// Passes when refused with 42501.
fn denied(o: &Outcome) -> Cell {
    if o.refused_by_security() {
        Cell::pass("permission denied")
    } else {
        Cell::fail(o.describe())
    }
}

/// Passes when no returned row's first column is `other` (refusals pass too).
fn none_of(o: &Outcome, other: Uuid) -> Cell {
    match o {
        Outcome::Rows(rows) => {
            let leaked = rows
                .iter()
                .filter(|r| r.try_get_by_index::<Uuid>(0).ok() == Some(other))
                .count();
            if leaked == 0 {
                Cell::pass(format!("{} row(s), none of B", rows.len()))
            } else {
                Cell::fail(format!("{leaked} row(s) of tenant B"))
            }
        }
        Outcome::Affected(0) => Cell::pass("0 rows affected"),
        Outcome::Affected(n) => Cell::fail(format!("{n} row(s) of B affected")),
        Outcome::Refused { .. } => Cell::pass(o.describe()),
    }
}

/// Every cross-schema attack on every table of A's schema.
/// `app` is a pool of ONE connection (so state a transaction leaves on its session is there for
/// the next one); `shared` is a shared tenant.
pub async fn attack(
    app: &DatabaseConnection,
    d: &Dedicated,
    shared: Uuid,
) -> Result<Vec<Row>, DbErr> {
    let ((a, sa), (b, sb)) = (&d.a, &d.b);
    let mut out = Vec::new();
    for table in &d.tables {
        let mut cells = Vec::new();
        let own = run_as(
            app,
            Some(*a),
            &[],
            &format!("SELECT tenant_id FROM {table}"),
            true,
        )
        .await?;
        cells.push((
            "own_rows",
            match &own {
                Outcome::Rows(r) if !r.is_empty() => Cell::pass(format!("{} own row(s)", r.len())),
                Outcome::Rows(_) => Cell::NotApplicable,
                other => Cell::fail(other.describe()),
            },
        ));
        let read_a = format!("SELECT tenant_id FROM {sa}.{table}");
        cells.push((
            "outside_tx",
            denied(&run_as(app, None, &[], &read_a, true).await?),
        ));
        let read_b = format!("SELECT tenant_id FROM {sb}.{table}");
        cells.push((
            "qualified_read",
            denied(&run_as(app, Some(*a), &[], &read_b, true).await?),
        ));
        let write_b = format!("DELETE FROM {sb}.{table}");
        cells.push((
            "qualified_write",
            denied(&run_as(app, Some(*a), &[], &write_b, false).await?),
        ));
        let path = vec![format!("SET LOCAL search_path = {sb}, public")];
        let unq = format!("SELECT tenant_id FROM {table}");
        cells.push((
            "search_path",
            none_of(&run_as(app, Some(*a), &path, &unq, true).await?, *b),
        ));
        let role = vec![format!("SET LOCAL ROLE {sb}")];
        let read = run_as(app, Some(*a), &role, &read_b, true).await?;
        let change = run_as(
            app,
            Some(*a),
            &role,
            &format!("UPDATE {sb}.{table} SET tenant_id = tenant_id"),
            false,
        )
        .await?;
        cells.push((
            "set_role",
            match (none_of(&read, *b), none_of(&change, *b)) {
                (Cell::Pass(r), Cell::Pass(w)) => Cell::pass(format!("read: {r}; write: {w}")),
                (Cell::Fail(f), _) | (_, Cell::Fail(f)) => Cell::fail(f),
                _ => Cell::NotApplicable,
            },
        ));
        let temp = vec![
            format!("CREATE TEMP TABLE {table} (tenant_id uuid) ON COMMIT DROP"),
            format!("INSERT INTO pg_temp.{table} VALUES ('{b}')"),
        ];
        cells.push((
            "pg_temp",
            none_of(&run_as(app, Some(*a), &temp, &unq, true).await?, *b),
        ));
        // Session-lived (no ON COMMIT DROP): it outlives A's transaction on the connection.
        let plant = vec![
            format!("CREATE TEMP TABLE {table} (tenant_id uuid)"),
            format!("INSERT INTO pg_temp.{table} VALUES ('{a}')"),
            format!("GRANT ALL ON pg_temp.{table} TO PUBLIC"),
        ];
        // Only a table the shared tenant has (in public) can be shadowed: a name that is in no
        // schema of the path before pg_temp resolves to pg_temp wherever pg_temp is listed.
        let shared_has = run_as(
            app,
            None,
            &[],
            &format!(
                "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
                 ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = '{table}'"
            ),
            true,
        )
        .await?;
        let planted = if matches!(&shared_has, Outcome::Rows(r) if r.is_empty()) {
            Err(Cell::NotApplicable)
        } else {
            Ok(commit_as(app, Some(*a), &plant).await?)
        };
        let cell = match planted {
            Err(not_applicable) => not_applicable,
            Ok(Some(refused)) => Cell::pass(format!("not planted: {}", refused.describe())),
            Ok(None) => {
                let next = run_as(app, Some(shared), &[], &unq, true).await?;
                let left = commit_as(
                    app,
                    Some(*a),
                    &[format!("DROP TABLE IF EXISTS pg_temp.{table}")],
                )
                .await?;
                match (none_of(&next, *a), left) {
                    (_, Some(o)) => Cell::fail(format!("cannot drop it: {}", o.describe())),
                    (cell, None) => cell,
                }
            }
        };
        cells.push(("pg_temp_session", cell));
        let view = format!("CREATE VIEW {sa}.peek_{table} AS SELECT tenant_id FROM {sb}.{table}");
        cells.push((
            "view_across",
            denied(&run_as(app, Some(*a), &[], &view, false).await?),
        ));
        let trunc = run_as(app, Some(*a), &[], &format!("TRUNCATE {table}"), false).await?;
        cells.push(("truncate", denied(&trunc)));
        let mv = run_as(
            app,
            Some(*a),
            &[],
            &format!("UPDATE {table} SET tenant_id = '{b}'"),
            false,
        )
        .await?;
        cells.push((
            "move_row",
            match &mv {
                Outcome::Refused { code: Some(c), .. } if c == "42501" || c == "23514" => {
                    Cell::pass(mv.describe())
                }
                Outcome::Affected(0) if matches!(own, Outcome::Rows(ref r) if r.is_empty()) => {
                    Cell::NotApplicable
                }
                other => Cell::fail(other.describe()),
            },
        ));
        out.push(Row {
            subject: format!("{sa}.{table} (dedicated)"),
            cells,
        });
    }
    Ok(out)
}

/// The hook of [`pg_temp_type`]: records that it ran and takes the last word on `search_path`.
const TYPE_HOOK: &str = "CREATE FUNCTION pg_temp.iso_hook(v pg_catalog.text) RETURNS boolean \
     LANGUAGE sql AS $$ SELECT pg_catalog.set_config('isolation.hooked', 'yes', true) IS NOT NULL \
     AND pg_catalog.set_config('search_path', 'pg_temp, public', true) IS NOT NULL $$";

/// The `pg_temp_type` cell (see the module docs), on a fresh one-connection pool on `app_url`.
pub async fn pg_temp_type(app_url: &str, d: &Dedicated) -> Result<Row, HarnessError> {
    let ((_, sa), (b, sb)) = (&d.a, &d.b);
    let conn = connect(app_url, 1).await?;
    let mut planted = Ok(());
    for sql in [
        TYPE_HOOK,
        "CREATE DOMAIN pg_temp.text AS pg_catalog.text CHECK (pg_temp.iso_hook(VALUE))",
        "CREATE DOMAIN pg_temp.uuid AS pg_catalog.uuid \
         CHECK (pg_temp.iso_hook(VALUE::pg_catalog.text))",
        "SET search_path = public",
    ] {
        if let Err(e) = conn.execute_unprepared(sql).await {
            planted = Err(e);
            break;
        }
    }
    let (cell, uuid_cell) = match planted {
        Err(e) => (
            Cell::pass(format!("not planted: {e}")),
            Cell::pass(format!("not planted: {e}")),
        ),
        Ok(()) => {
            let seen = run_as(
                &conn,
                Some(*b),
                &[],
                "SELECT current_user::text, pg_catalog.current_setting('search_path'), \
                 pg_catalog.current_setting('isolation.hooked', true)",
                true,
            )
            .await?;
            let want = format!("{sb}, public, pg_temp");
            let cell = match &seen {
                Outcome::Rows(rows) => match rows.first().map(|r| {
                    (
                        r.try_get_by_index::<String>(0).unwrap_or_default(),
                        r.try_get_by_index::<String>(1).unwrap_or_default(),
                        r.try_get_by_index::<Option<String>>(2).ok().flatten(),
                    )
                }) {
                    Some((role, path, hooked))
                        if role == sb.as_str() && path == want && hooked.is_none() =>
                    {
                        Cell::pass(format!("role {role}, search_path {path}, hook never ran"))
                    }
                    Some((role, path, hooked)) => Cell::fail(format!(
                        "B's entry: role {role}, search_path {path}, hook ran: {}",
                        hooked.unwrap_or_else(|| "no".into())
                    )),
                    None => Cell::fail("no row"),
                },
                other => Cell::fail(format!("B cannot enter: {}", other.describe())),
            };
            // Neither the policies' cast (the setting's form since m0017, resolved when the
            // policy was made; the function's, inlined, before) nor the function's, inlined
            // where it is called as the column defaults call it, may reach the domain, even in
            // a transaction that set an id without entering.
            let policy = run_as(
                &conn,
                None,
                &[
                    format!("SET LOCAL tenantry.tenant_id = '{b}'"),
                    "SELECT count(*) FROM tenancy.tenant_users".to_owned(),
                    "SELECT tenancy.current_tenant_id()".to_owned(),
                ],
                "SELECT pg_catalog.current_setting('isolation.hooked', true)",
                true,
            )
            .await?;
            let hooked = match &policy {
                Outcome::Rows(rows) => rows
                    .first()
                    .and_then(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten()),
                other => Some(other.describe()),
            };
            let uuid_cell = match hooked {
                None => {
                    Cell::pass("policies and tenancy.current_tenant_id() evaluated, hook never ran")
                }
                Some(h) => Cell::fail(format!(
                    "hook ran evaluating the policies or tenancy.current_tenant_id(): {h}"
                )),
            };
            (cell, uuid_cell)
        }
    };
    // Dropped now, not when the backend exits after the close (which the server does in its
    // own time): the catalog audit that follows checks the app login owns nothing.
    conn.execute_unprepared("DISCARD TEMP").await?;
    conn.close().await?;
    Ok(Row {
        subject: format!("{sa} session state (dedicated)"),
        cells: vec![("pg_temp_type", cell), ("pg_temp_uuid", uuid_cell)],
    })
}

/// The table's name without its schema.
fn relname(table: &Table) -> &str {
    table
        .name
        .split_once('.')
        .map_or(table.name.as_str(), |(_, t)| t)
}

/// Seeds a row of tenant `b` in every table of `a`'s schema `schema` (`tables`) as the
/// superuser: the tenant pins (`<table>_tenant_pinned`, `CHECK (tenant_id = a)`) are dropped
/// for the seeding and put back `NOT VALID` (they check every new row again; the rows seeded
/// here stand for what a bug past the pin would leave, which row level security must hide).
async fn seed_past_pins(
    superuser: &DatabaseConnection,
    schema: &str,
    tables: &[Table],
    a: Uuid,
    b: Uuid,
) -> Result<Seeded, DbErr> {
    let pins = superuser
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.relname::text FROM pg_catalog.pg_constraint k \
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND k.conname = c.relname || '_tenant_pinned'",
            [schema.into()],
        ))
        .await?
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let alter = |pin: &str, how: &str| format!("ALTER TABLE {schema}.{pin} {how}");
    for pin in &pins {
        superuser
            .execute_unprepared(&alter(pin, &format!("DROP CONSTRAINT {pin}_tenant_pinned")))
            .await?;
    }
    let seeded = seed_schema(superuser, tables, b).await;
    for pin in &pins {
        superuser
            .execute_unprepared(&alter(
                pin,
                &format!(
                    "ADD CONSTRAINT {pin}_tenant_pinned CHECK (tenant_id = '{a}'::uuid) NOT VALID"
                ),
            ))
            .await?;
    }
    seeded
}

/// The shared leg's attacks on every table of A's schema (see the module docs). `app` is a
/// pool of ONE app connection; `superuser` seeds a row of each tenant in its own schema.
pub async fn shared_cells(
    app: &DatabaseConnection,
    app_url: &str,
    superuser: &DatabaseConnection,
    d: &Dedicated,
) -> Result<Vec<Row>, DbErr> {
    let ((a, sa), (b, sb)) = (&d.a, &d.b);
    // Every attack below starts by entering A's schema; if that fails, none can run.
    let entered = run_as(app, Some(*a), &[], "SELECT 1", true).await?;
    if let Outcome::Refused { .. } = entered {
        return Ok(vec![Row {
            subject: format!("{sa} (dedicated, shared attacks)"),
            cells: vec![(
                "enter",
                Cell::fail(format!("A cannot enter its schema: {}", entered.describe())),
            )],
        }]);
    }
    let mine = discover_schema(superuser, sa.as_str()).await?;
    let theirs = discover_schema(superuser, sb.as_str()).await?;
    let seeded_a = seed_schema(superuser, &mine, *a).await?;
    let seeded_b = seed_schema(superuser, &theirs, *b).await?;
    // B's rows IN A's own tables, so each cell meets a row only row level security hides.
    let intruders = seed_past_pins(superuser, sa.as_str(), &mine, *a, *b).await?;
    let mut rows = seeded_a.rows;
    rows.extend(intruders.rows);
    let seeded = Seeded {
        tenant_a: *a,
        tenant_b: *b,
        rows,
        failures: [seeded_a.failures, seeded_b.failures, intruders.failures].concat(),
    };
    let target = attacks::Target {
        app,
        app_url,
        mode: ContextMode::Entered,
        seeded: &seeded,
        registry: None,
        tables: &mine,
        no_context: Some(format!("SET LOCAL ROLE {sa}")),
    };
    let mut out = Vec::new();
    for table in mine.iter().filter(|t| t.tenant_scoped) {
        let mut cells = attack_table(&target, table).await?;
        let across = match theirs.iter().find(|t| relname(t) == relname(table)) {
            Some(other) => copy_to(&target, other, *a).await,
            None => Cell::fail(format!("{sb} has no {}", relname(table))),
        };
        cells.push(("copy_across", across));
        out.push(Row {
            subject: format!("{} (dedicated, shared attacks)", table.name),
            cells,
        });
    }
    for (table, error) in &seeded.failures {
        out.push(Row {
            subject: format!("{table} (dedicated, shared attacks)"),
            cells: vec![("seed", Cell::fail(error.clone()))],
        });
    }
    Ok(out)
}
