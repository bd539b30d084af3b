//! Login-level attacks (SET ROLE), SECURITY DEFINER functions called with another tenant's
//! data, and what the app may do to global tables.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};

use super::catalog::Table;
use super::outcome::{ContextMode, Outcome, attempt};
use super::report::{Cell, Row};
use super::seed::Seeded;

/// Global tables the app may write, each with the reason. Anything else writable is a finding.
pub const GLOBAL_WRITE_ALLOW_LIST: &[(&str, &str)] = &[];

/// `SET ROLE` to every privileged role must be refused for the app login. Not tried:
/// `tenantry_dedicated` (NOINHERIT, owns and may do nothing: the app login's door to the
/// tenant roles, attacked by [`super::schemas`]) and the tenant roles themselves.
pub async fn set_role(
    app: &DatabaseConnection,
    app_login: &str,
    app_role: &str,
) -> Result<Row, DbErr> {
    let rows = app
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT DISTINCT r.rolname::text FROM pg_roles r WHERE r.rolname NOT IN ($1, $2, $3) AND pg_catalog.left(r.rolname, 3) <> 'pg_' AND ( \
               r.rolsuper OR r.rolbypassrls OR r.rolcreaterole \
               OR r.oid IN (SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                            WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND pg_catalog.left(n.nspname, 3) <> 'pg_') \
               OR r.oid IN (SELECT p.proowner FROM pg_proc p WHERE p.prosecdef) \
               OR r.rolname LIKE 'tenantry\\_%') ORDER BY 1",
            [
                app_login.into(),
                app_role.into(),
                migration::dedicated::DEDICATED_ROLE.into(),
            ],
        ))
        .await?;
    let mut cells = Vec::new();
    let mut tried = Vec::new();
    for r in rows {
        let role: String = r.try_get_by_index(0)?;
        let outcome = attempt(
            app,
            None,
            ContextMode::Local,
            &format!("SET ROLE \"{}\"", role.replace('"', "\"\"")),
            false,
        )
        .await?;
        if !outcome.refused_by_security() {
            cells.push((
                "set_role",
                Cell::fail(format!("the app login can SET ROLE {role}")),
            ));
        }
        tried.push(role);
    }
    if cells.is_empty() {
        cells.push((
            "set_role",
            Cell::pass(format!("refused for {}", tried.join(", "))),
        ));
    }
    Ok(Row {
        subject: format!("login {app_login}"),
        cells,
    })
}

/// Each SECURITY DEFINER function, called under tenant A with tenant B's identifiers (matched by
/// argument name, `p_` stripped; byte arguments get random bytes, since a secret is what an
/// attacker does not have), must neither return anything of tenant B (its id or any distinctive
/// value of its tenant rows; global rows such as users are not tenant data) nor change any of
/// tenant B's rows. The call is committed, and B's
/// rows are fingerprinted by the superuser before and after.
pub async fn definer_functions(
    app: &DatabaseConnection,
    superuser: &DatabaseConnection,
    tables: &[Table],
    seeded: &Seeded,
) -> Result<Vec<Row>, DbErr> {
    let funcs = app
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname), \
                    coalesce((SELECT array_agg(coalesce(a, '') ORDER BY i) FROM unnest(p.proargnames[1:p.pronargs]) WITH ORDINALITY u(a, i)), '{}'), \
                    coalesce((SELECT array_agg(format_type(t, NULL) ORDER BY i) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i)), '{}'), \
                    n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog','information_schema') ORDER BY 4"
                .to_owned(),
        ))
        .await?;
    let (a, b) = (seeded.tenant_a, seeded.tenant_b);
    let secrets = distinctive_values(tables, seeded, b, a);
    let mut rows = Vec::new();
    for f in funcs {
        let name: String = f.try_get_by_index(0)?;
        let arg_names: Vec<String> = f.try_get_by_index(1)?;
        let arg_types: Vec<String> = f.try_get_by_index(2)?;
        let label: String = f.try_get_by_index(3)?;
        let args: Vec<String> = arg_types
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                let wanted = arg_names
                    .get(i)
                    .map(|n| n.trim_start_matches("p_").to_owned())
                    .unwrap_or_default();
                if ty == "bytea" {
                    return format!("decode('{}', 'hex')", uuid::Uuid::new_v4().simple());
                }
                tables
                    .iter()
                    .filter(|t| t.column(&wanted).is_some())
                    .find_map(|t| {
                        seeded
                            .row(t, b)
                            .map(|r| super::seed::literal(&r[&wanted], ty))
                    })
                    .unwrap_or_else(|| format!("NULL::{ty}"))
            })
            .collect();
        let before = fingerprint(superuser, tables, seeded, b).await?;
        let sql = format!(
            "SELECT to_jsonb(r)::text FROM {name}({}) AS r",
            args.join(", ")
        );
        let txn = app.begin().await?;
        txn.execute_unprepared(&ContextMode::Local.set_sql(a))
            .await?;
        let result = txn
            .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await;
        let returned: Vec<String> = match &result {
            Ok(rows) => rows
                .iter()
                .filter_map(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten())
                .collect(),
            Err(_) => Vec::new(),
        };
        match result {
            Ok(_) => txn.commit().await?,
            Err(_) => txn.rollback().await?,
        }
        let after = fingerprint(superuser, tables, seeded, b).await?;
        let leaked = returned.iter().any(|text| {
            text.contains(&b.to_string()) || secrets.iter().any(|v| text.contains(v.as_str()))
        });
        let cell = if before != after {
            Cell::fail("changed tenant B's rows when called under tenant A")
        } else if leaked {
            Cell::fail("returned tenant B's data under tenant A")
        } else {
            Cell::pass(format!(
                "{} row(s), none of tenant B; B unchanged",
                returned.len()
            ))
        };
        rows.push(Row {
            subject: format!("function {label}"),
            cells: vec![("definer_other_tenant", cell)],
        });
    }
    Ok(rows)
}

/// String values of `victim`'s seeded tenant rows (tenant tables and its registry row; global
/// tables such as `users` hold no tenant's data) that are long enough to be distinctive and do
/// not also occur in `other`'s rows.
fn distinctive_values(
    tables: &[Table],
    seeded: &Seeded,
    victim: uuid::Uuid,
    other: uuid::Uuid,
) -> Vec<String> {
    let registry = super::seed::registry(tables).map(|(t, _)| t);
    let tenant_data = |table: &str| {
        registry.as_deref() == Some(table)
            || tables
                .iter()
                .any(|t| t.sql_name == table && t.tenant_scoped)
    };
    let strings = |tenant: uuid::Uuid| -> Vec<String> {
        seeded
            .rows
            .iter()
            .filter(|((table, t), _)| *t == tenant && tenant_data(table))
            .flat_map(|(_, row)| row.as_object().into_iter().flat_map(|o| o.values()))
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|v| v.len() >= 8)
            .collect()
    };
    // Values of global rows (a user's id, referenced from B's memberships) are not B's data.
    let global: Vec<String> = seeded
        .rows
        .iter()
        .filter(|((table, _), _)| !tenant_data(table))
        .flat_map(|(_, row)| row.as_object().into_iter().flat_map(|o| o.values()))
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let mine = strings(other);
    strings(victim)
        .into_iter()
        .filter(|v| !mine.contains(v) && !global.contains(v))
        .collect()
}

/// A digest of every row of `tenant` (tenant tables by `tenant_id`, seeded global rows by key),
/// read by the superuser.
async fn fingerprint(
    superuser: &DatabaseConnection,
    tables: &[Table],
    seeded: &Seeded,
    tenant: uuid::Uuid,
) -> Result<String, DbErr> {
    let mut parts = Vec::new();
    for t in tables {
        let sql = if t.tenant_scoped {
            format!(
                "SELECT coalesce(md5(string_agg(to_jsonb(x)::text, ',' ORDER BY to_jsonb(x)::text)), '') FROM {} x WHERE tenant_id = '{tenant}'",
                t.sql_name
            )
        } else if let Some(row) = seeded.row(t, tenant) {
            format!(
                "SELECT coalesce(md5(string_agg(to_jsonb(x)::text, ',')), '') FROM {} x WHERE {}",
                t.sql_name,
                super::seed::key_predicate(t, row)
            )
        } else {
            continue;
        };
        let row = superuser
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?;
        parts.push(
            row.and_then(|r| r.try_get_by_index::<String>(0).ok())
                .unwrap_or_default(),
        );
    }
    Ok(parts.join("/"))
}

/// What the app may do to each global table: reading is reported, writing is a finding unless
/// the table is on [`GLOBAL_WRITE_ALLOW_LIST`].
pub async fn global_tables<C: ConnectionTrait>(
    owner: &C,
    app: &DatabaseConnection,
    tables: &[Table],
    seeded: &Seeded,
    app_role: &str,
) -> Result<Vec<Row>, DbErr> {
    let mut rows = Vec::new();
    for t in tables.iter().filter(|t| !t.tenant_scoped) {
        let r = owner
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT has_table_privilege($1, $2::regclass, 'SELECT'), \
                        has_table_privilege($1, $2::regclass, 'INSERT') OR has_table_privilege($1, $2::regclass, 'UPDATE') \
                        OR has_table_privilege($1, $2::regclass, 'DELETE') OR has_table_privilege($1, $2::regclass, 'TRUNCATE'), \
                        (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = $2::regclass)",
                [app_role.into(), t.sql_name.clone().into()],
            ))
            .await?;
        let Some(r) = r else { continue };
        let read: bool = r.try_get_by_index(0)?;
        let write: bool = r.try_get_by_index(1)?;
        let rls: bool = r.try_get_by_index(2)?;
        let allowed = GLOBAL_WRITE_ALLOW_LIST
            .iter()
            .find(|(name, _)| *name == t.name);
        let cell = match (write, allowed) {
            (true, Some((_, why))) => Cell::pass(format!("app may write (allow-listed: {why})")),
            (true, None) => {
                Cell::fail("the app role may write this global table (not on the allow-list)")
            }
            (false, _) if read => Cell::pass(format!(
                "app may read{}",
                if rls {
                    ", filtered by row level security"
                } else {
                    " every row"
                }
            )),
            (false, _) => Cell::pass("no access for the app"),
        };
        let mut cells = vec![("app_access", cell)];
        // A global table holding rows of tenant B (its registry row, its users) must not show
        // them to tenant A.
        if read && let Some(row_b) = seeded.row(t, seeded.tenant_b) {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE {}",
                t.sql_name,
                super::seed::key_predicate(t, row_b)
            );
            let outcome =
                attempt(app, Some(seeded.tenant_a), ContextMode::Local, &sql, true).await?;
            let visible: i64 = match &outcome {
                Outcome::Rows(r) => r
                    .first()
                    .and_then(|r| r.try_get_by_index(0).ok())
                    .unwrap_or(0),
                _ => 0,
            };
            cells.push((
                "read_other",
                if visible == 0 {
                    Cell::pass("tenant B's row invisible")
                } else {
                    Cell::fail("tenant A reads tenant B's row")
                },
            ));
        }
        rows.push(Row {
            subject: format!("global {}", t.name),
            cells,
        });
    }
    Ok(rows)
}
