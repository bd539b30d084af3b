//! Checks that stop a migration before it hurts: long transactions that would block it, and a
//! `down` that would throw away which tenant owns which row.

use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use crate::names::{DEFAULT_TENANT_ID, TENANT_COLUMN};

/// Set by `migration down --force` (or `TENANTRY_FORCE_DOWN=1`): lets a `down` drop tenant
/// assignments of tables that hold rows of several tenants.
pub static FORCE_DOWN: AtomicBool = AtomicBool::new(false);

fn force_down() -> bool {
    FORCE_DOWN.load(Ordering::SeqCst)
        || std::env::var("TENANTRY_FORCE_DOWN").is_ok_and(|v| v == "1" || v == "true")
}

/// A check between steps.
#[derive(Debug, Clone)]
pub enum Guard {
    /// Before the next (long or lock-taking) steps: refuse while another session of this
    /// database has a transaction open longer than `max_age_secs`, since our DDL would queue
    /// behind it and every query of the application would queue behind our DDL.
    NoLongTransactions {
        /// Age in seconds above which a transaction blocks the run.
        max_age_secs: u32,
    },
    /// On `down`: refuse to drop `tenant_id` from these tables while any of them holds rows
    /// of a tenant other than the default one, unless forced.
    KeepTenantAssignments {
        /// `(schema, table)` pairs.
        tables: Vec<(String, String)>,
    },
}

impl Guard {
    /// The default long-transaction guard: `TENANTRY_MAX_XACT_AGE_SECS` or 60 seconds.
    pub fn no_long_transactions() -> Self {
        let max_age_secs = std::env::var("TENANTRY_MAX_XACT_AGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        Self::NoLongTransactions { max_age_secs }
    }

    pub(crate) async fn before_up<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        match self {
            Self::NoLongTransactions { max_age_secs } => {
                let rows = db
                    .query_all_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pid, coalesce(usename, '') AS usename, coalesce(state, '') AS state, \
                         extract(epoch FROM now() - xact_start)::bigint AS age \
                         FROM pg_catalog.pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid() \
                           AND xact_start < now() - make_interval(secs => $1) ORDER BY xact_start",
                        [f64::from(*max_age_secs).into()],
                    ))
                    .await?;
                if rows.is_empty() {
                    return Ok(());
                }
                let mut lines = Vec::new();
                for row in rows {
                    let pid: i32 = row.try_get("", "pid")?;
                    let user: String = row.try_get("", "usename")?;
                    let state: String = row.try_get("", "state")?;
                    let age: i64 = row.try_get("", "age")?;
                    lines.push(format!(
                        "  pid {pid} (user {user}, {state}) open for {age}s"
                    ));
                }
                Err(DbErr::Migration(format!(
                    "refusing to continue: transactions older than {max_age_secs}s would block this \
                     migration's locks, and the application would queue behind it:\n{}\n\
                     End them (or raise TENANTRY_MAX_XACT_AGE_SECS) and run again; the migration resumes.",
                    lines.join("\n")
                )))
            }
            Self::KeepTenantAssignments { .. } => Ok(()),
        }
    }

    /// Must run inside a transaction (it uses a savepoint).
    pub(crate) async fn before_down<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let Self::KeepTenantAssignments { tables } = self else {
            return Ok(());
        };
        if force_down() {
            return Ok(());
        }
        let mut holding = Vec::new();
        for (schema, table) in tables {
            let stmt = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a \
                 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND NOT a.attisdropped)",
                [
                    schema.as_str().into(),
                    table.as_str().into(),
                    TENANT_COLUMN.into(),
                ],
            );
            let has_column = db
                .query_one_raw(stmt)
                .await?
                .map(|r| r.try_get_by_index::<bool>(0))
                .transpose()?
                .unwrap_or(false);
            if !has_column {
                continue;
            }
            let count_sql = format!(
                "SELECT count(*) FROM {} WHERE {} IS DISTINCT FROM '{DEFAULT_TENANT_ID}'::uuid",
                quote_qualified(schema, table),
                quote_ident(TENANT_COLUMN)
            );
            // FORCE row level security hides every row from the owner without a tenant context:
            // lift it for this one count, inside a savepoint that is rolled back right after.
            let no_force = crate::dsl::RowLevelSecurity::no_force(crate::tables::t(
                schema,
                sea_orm::sea_query::Alias::new(table),
            ));
            db.execute_unprepared("SAVEPOINT tenantry_guard").await?;
            db.execute_raw(crate::plan::pg(&no_force)).await?;
            let counted = db
                .query_one_raw(Statement::from_string(DbBackend::Postgres, count_sql))
                .await;
            db.execute_unprepared("ROLLBACK TO SAVEPOINT tenantry_guard")
                .await?;
            let others: i64 = counted?
                .map(|r| r.try_get_by_index::<i64>(0))
                .transpose()?
                .unwrap_or(0);
            if others > 0 {
                holding.push(format!(
                    "  {schema}.{table}: {others} rows of non-default tenants"
                ));
            }
        }
        if holding.is_empty() {
            return Ok(());
        }
        Err(DbErr::Migration(format!(
            "refusing to roll back: dropping tenant_id would destroy which tenant owns these rows:\n{}\n\
             Offboard those tenants first, or run `migration down --force` if losing the \
             assignment is intended.",
            holding.join("\n")
        )))
    }

    /// One line for `plan` (up direction).
    pub fn describe_up(&self) -> String {
        match self {
            Self::NoLongTransactions { max_age_secs } => {
                format!("stop if a transaction in this database is older than {max_age_secs}s")
            }
            Self::KeepTenantAssignments { .. } => "none on up".into(),
        }
    }

    /// One line for `plan --down`.
    pub fn describe_down(&self) -> String {
        match self {
            Self::KeepTenantAssignments { tables } => format!(
                "refuse unless forced if any of {} holds rows of a non-default tenant",
                tables
                    .iter()
                    .map(|(s, t)| format!("{s}.{t}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::NoLongTransactions { .. } => "none on down".into(),
        }
    }
}

/// Quotes an identifier for PostgreSQL (`"` doubled).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `name` as PostgreSQL keeps it: an identifier longer than 63 bytes (`NAMEDATALEN` - 1) is
/// cut after the last whole character within them, as the server cuts it (with a `NOTICE`)
/// wherever it reads one. A name the plan builds (`<table>_legacy_key_idx`) goes through this
/// before it is compared with the catalog, which holds only the cut name.
pub fn truncate_ident(name: &str) -> String {
    const MAX: usize = 63;
    let mut end = name.len().min(MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

/// Quotes `schema.table`.
pub fn quote_qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// Refuses a `down` that would drop these tenant tables while they hold rows of tenants other
/// than the default one (unless forced).
pub fn keep_assignments(tables: &[crate::tenant_table::TenantTable]) -> crate::guards::Guard {
    crate::guards::Guard::KeepTenantAssignments {
        tables: tables
            .iter()
            .map(|t| (t.name().0.to_owned(), t.name().1.to_owned()))
            .collect(),
    }
}
