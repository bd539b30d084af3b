//! Login-level attacks (SET ROLE), SECURITY DEFINER functions called with another tenant's
//! data, and what the app may do to global tables.

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::catalog::Table;
use super::outcome::{ContextMode, Outcome, attempt};
use super::report::{Cell, Row};
use super::seed::Seeded;

/// Global tables the app may write, each with the reason. Anything else writable is a finding.
pub const GLOBAL_WRITE_ALLOW_LIST: &[(&str, &str)] = &[];

/// `SET ROLE` to every privileged role must be refused for the app login.
pub async fn set_role(
    app: &DatabaseConnection,
    app_login: &str,
    app_role: &str,
) -> Result<Row, DbErr> {
    let rows = app
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT DISTINCT r.rolname::text FROM pg_roles r WHERE r.rolname NOT IN ($1, $2) AND r.rolname NOT LIKE 'pg\\_%' AND ( \
               r.rolsuper OR r.rolbypassrls OR r.rolcreaterole \
               OR r.oid IN (SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                            WHERE n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\\_%') \
               OR r.oid IN (SELECT p.proowner FROM pg_proc p WHERE p.prosecdef) \
               OR r.rolname LIKE 'tenantry\\_%') ORDER BY 1",
            [app_login.into(), app_role.into()],
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
/// attacker does not have), must not return anything of tenant B.
pub async fn definer_functions(
    app: &DatabaseConnection,
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
    let b = seeded.tenant_b;
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
                    .filter(|t| t.tenant_scoped && t.column(&wanted).is_some())
                    .find_map(|t| {
                        seeded
                            .row(t, b)
                            .map(|r| super::seed::literal(&r[&wanted], ty))
                    })
                    .unwrap_or_else(|| format!("NULL::{ty}"))
            })
            .collect();
        let sql = format!(
            "SELECT to_jsonb(r)::text FROM {name}({}) AS r",
            args.join(", ")
        );
        let outcome = attempt(app, Some(seeded.tenant_a), ContextMode::Local, &sql, true).await?;
        let cell = match outcome {
            Outcome::Rows(rows) => {
                let leaked = rows
                    .iter()
                    .filter_map(|r| r.try_get_by_index::<Option<String>>(0).ok().flatten())
                    .any(|text| text.contains(&b.to_string()));
                if leaked {
                    Cell::fail("returned tenant B's data under tenant A")
                } else {
                    Cell::pass(format!("{} row(s), none of tenant B", rows.len()))
                }
            }
            other => Cell::pass(format!("refused: {}", other.describe())),
        };
        rows.push(Row {
            subject: format!("function {label}"),
            cells: vec![("definer_other_tenant", cell)],
        });
    }
    Ok(rows)
}

/// What the app may do to each global table: reading is reported, writing is a finding unless
/// the table is on [`GLOBAL_WRITE_ALLOW_LIST`].
pub async fn global_tables<C: ConnectionTrait>(
    owner: &C,
    tables: &[Table],
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
        rows.push(Row {
            subject: format!("global {}", t.name),
            cells: vec![("app_access", cell)],
        });
    }
    Ok(rows)
}
