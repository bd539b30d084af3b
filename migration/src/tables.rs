//! Table and column names shared by the migrations (sea-query identifiers).

pub use migration_kit::tables::t;
use sea_orm::DeriveIden;

/// `users`, Tenantry's identity table: global (a person may belong to many tenants); in
/// `public` until m0011, in `tenancy` since.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum Users {
    Table,
    Id,
    Email,
    FullName,
    PasswordHash,
}

/// `public.projects`.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum Projects {
    Table,
    Id,
    OwnerId,
    Name,
    Description,
    Status,
    Metadata,
}

/// `public.documents`: belong to a project.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum Documents {
    Table,
    Id,
    ProjectId,
    Title,
    Body,
    Tags,
}

/// `public.tasks`: belong to a project.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum Tasks {
    Table,
    Id,
    ProjectId,
    Title,
    Status,
    AssigneeId,
    DueAt,
}

/// `tenancy.tenants`.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    Region,
    Plan,
    Status,
    AdminEmail,
    Settings,
}

/// `tenancy.tenant_users`: membership of a user in a tenant, with a role.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum TenantUsers {
    Table,
    TenantId,
    UserId,
    Role,
}

/// `tenancy.api_keys`.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum ApiKeys {
    Table,
    TenantId,
    Id,
    Name,
    Prefix,
    SecretHash,
    Scopes,
    RateLimitPerMinute,
    MonthlyQuota,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
    CreatedBy,
}

/// `tenancy.usage_events`.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum UsageEvents {
    Table,
    TenantId,
    Id,
    ApiKeyId,
    Kind,
    Quantity,
    TokensIn,
    TokensOut,
    AudioSeconds,
    OcrPages,
    LatencyMs,
    Endpoint,
    Metadata,
    OccurredAt,
}

/// `tenancy.audit_logs`: what happened inside one tenant.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum AuditLogs {
    Table,
    TenantId,
    Id,
    ActorUserId,
    ActorApiKeyId,
    Action,
    ResourceType,
    ResourceId,
    Details,
}

/// `tenancy.superadmin_audit_logs`: every use of the superadmin escape.
#[derive(DeriveIden)]
#[allow(missing_docs)]
pub enum SuperadminAuditLogs {
    Table,
    Id,
    Actor,
    Reason,
    ScopeTenantId,
    Action,
    Details,
}
