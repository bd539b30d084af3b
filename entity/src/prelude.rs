//! Every entity under the name of its table in UpperCamelCase, plus [`TenantScoped`]:
//! `use entity::prelude::*;`.

pub use crate::api_keys::Entity as ApiKeys;
pub use crate::audit_logs::Entity as AuditLogs;
pub use crate::documents::Entity as Documents;
pub use crate::member_roles::Entity as MemberRoles;
pub use crate::projects::Entity as Projects;
pub use crate::role_permissions::Entity as RolePermissions;
pub use crate::roles::Entity as Roles;
pub use crate::superadmin_audit_logs::Entity as SuperadminAuditLogs;
pub use crate::tasks::Entity as Tasks;
pub use crate::tenant_scoped::TenantScoped;
pub use crate::tenant_users::Entity as TenantUsers;
pub use crate::tenants::Entity as Tenants;
pub use crate::usage_events::Entity as UsageEvents;
pub use crate::users::Entity as Users;
