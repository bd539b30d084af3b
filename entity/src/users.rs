//! `tenancy.users` (Tenantry's identity table; in `public` before m0011): the people who sign in. Global: a person may belong to many tenants, through
//! [`tenant_users`](crate::tenant_users).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A row of `tenancy.users`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(schema_name = "tenancy", table_name = "users")]
pub struct Model {
    /// The user's id (the database fills it with `gen_random_uuid()` when not set).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The sign-in address, unique regardless of case (`citext`; filters compare it as
    /// `citext` too, so `Column::Email.eq("Ann@Example.com")` finds `ann@example.com`).
    #[sea_orm(column_type = r#"custom("citext")"#, save_as = "citext", unique)]
    pub email: String,
    /// The name shown to people (may be empty).
    #[sea_orm(column_type = "Text")]
    pub full_name: String,
    /// The password hash; `None` for users who sign in some other way.
    #[sea_orm(column_type = "Text")]
    pub password_hash: Option<String>,
    /// When the row was inserted.
    pub created_at: DateTimeWithTimeZone,
    /// When the row was last updated (kept by a trigger).
    pub updated_at: DateTimeWithTimeZone,
}

/// The entities a user relates to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user's memberships, one per tenant.
    #[sea_orm(has_many = "super::tenant_users::Entity")]
    TenantUsers,
    /// The projects the user owns (`projects.owner_id`).
    #[sea_orm(has_many = "super::projects::Entity")]
    OwnedProjects,
    /// The tasks assigned to the user (`tasks.assignee_id`).
    #[sea_orm(has_many = "super::tasks::Entity")]
    AssignedTasks,
}

impl Related<super::tenant_users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TenantUsers.def()
    }
}

impl Related<super::projects::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::OwnedProjects.def()
    }
}

impl Related<super::tasks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AssignedTasks.def()
    }
}

/// The tenants the user is a member of, through `tenant_users`.
impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        super::tenant_users::Relation::Tenant.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::tenant_users::Relation::User.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
