//! The four logins of a Tenantry database and how the harness creates them.
//!
//! | login | member of | used for |
//! |---|---|---|
//! | `tenantry_owner` | (owns the database and every object; CREATEROLE) | migrations |
//! | `tenantry_app_login` | `tenantry_app`, `tenantry_dedicated` (NOINHERIT: `SET ROLE` only) | the application (service, api) |
//! | `tenantry_superadmin_login` | `tenantry_superadmin` | the audited superadmin escape |
//! | `tenantry_legacy_login` | `tenantry_legacy` | the unchanged single-tenant application, pinned to the default tenant |
//!
//! The group roles themselves (`tenantry_app`, `tenantry_superadmin`, `tenantry_legacy`) are
//! created by the migrations; logins are deployment-specific, so the harness and `cargo xtask db`
//! create them here. Passwords are not used: the harness's clusters trust loopback only.

use migration::dedicated::DEDICATED_ROLE;
use migration::dsl::Grant;
use migration::names::{APP_ROLE, LEGACY_ROLE, SUPERADMIN_ROLE};
use sea_orm::{ConnectionTrait, DatabaseConnection};

/// The login that owns the database and runs migrations.
pub const OWNER_LOGIN: &str = "tenantry_owner";
/// The application's login: a member of `tenantry_app`, never owner, superuser or BYPASSRLS.
pub const APP_LOGIN: &str = "tenantry_app_login";
/// The superadmin login: a member of `tenantry_superadmin`.
pub const SUPERADMIN_LOGIN: &str = "tenantry_superadmin_login";
/// The unchanged legacy application's login: a member of `tenantry_legacy` only.
pub const LEGACY_LOGIN: &str = "tenantry_legacy_login";

/// The role a URL is wanted for (`cargo xtask db url --role ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRole {
    /// [`OWNER_LOGIN`].
    Owner,
    /// [`APP_LOGIN`].
    App,
    /// [`SUPERADMIN_LOGIN`].
    Superadmin,
    /// [`LEGACY_LOGIN`].
    Legacy,
}

impl LoginRole {
    /// The login's name.
    pub fn login(self) -> &'static str {
        match self {
            Self::Owner => OWNER_LOGIN,
            Self::App => APP_LOGIN,
            Self::Superadmin => SUPERADMIN_LOGIN,
            Self::Legacy => LEGACY_LOGIN,
        }
    }
}

/// Creates the four logins if absent. Runs as the bootstrap superuser.
///
/// This is cluster bootstrap, not a migration: only a superuser may create a CREATEROLE login,
/// and the tenancy DSL deliberately cannot render one.
pub async fn create_logins(superuser: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    for (login, extra) in [
        (OWNER_LOGIN, "CREATEROLE"),
        (APP_LOGIN, "NOCREATEROLE"),
        (SUPERADMIN_LOGIN, "NOCREATEROLE"),
        (LEGACY_LOGIN, "NOCREATEROLE"),
    ] {
        superuser
            .execute_unprepared(&format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}') THEN \
                 CREATE ROLE {login} LOGIN INHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB {extra}; \
                 END IF; END $$"
            ))
            .await?;
    }
    Ok(())
}

/// Makes the app, superadmin and legacy logins members of their group roles. Runs as the
/// owner after the migrations created those roles.
pub async fn grant_logins(owner: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    owner.execute(Grant::role(APP_ROLE).to(APP_LOGIN)).await?;
    owner
        .execute(Grant::role(SUPERADMIN_ROLE).to(SUPERADMIN_LOGIN))
        .await?;
    owner
        .execute(Grant::role(LEGACY_ROLE).to(LEGACY_LOGIN))
        .await?;
    // The app login may SET ROLE to a dedicated tenant's role, inheriting none of its rights
    // (the role is NOINHERIT); absent before m0010 (`up -n N` in migration tests).
    let dedicated = owner
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)",
            [DEDICATED_ROLE.into()],
        ))
        .await?
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false);
    if dedicated {
        owner
            .execute(Grant::role(DEDICATED_ROLE).to(APP_LOGIN))
            .await?;
    }
    Ok(())
}
