//! The tenant context: who acts, for which tenant, with which role.

use std::fmt;

use uuid::Uuid;

use crate::error::ServiceError;

/// A member's role in a tenant, strongest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// May do everything, including managing owners.
    Owner,
    /// Manages members, keys and settings.
    Admin,
    /// Reads and writes the tenant's data.
    Member,
    /// Reads only.
    Viewer,
}

impl MemberRole {
    /// The name stored in `tenant_users.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    /// Parses a stored or submitted role name.
    pub fn parse(s: &str) -> Result<Self, ServiceError> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            "viewer" => Ok(Self::Viewer),
            _ => Err(ServiceError::invalid(
                "role",
                "must be owner, admin, member or viewer",
            )),
        }
    }

    /// Whether this role may write the tenant's data.
    pub fn can_write(self) -> bool {
        self <= Self::Member
    }

    /// Whether this role may manage members, keys and tenant settings.
    pub fn can_administer(self) -> bool {
        self <= Self::Admin
    }
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user, through a verified token and a membership check.
    User {
        /// The user's id.
        user_id: Uuid,
    },
    /// An API key of the tenant.
    ApiKey {
        /// The key's id.
        key_id: Uuid,
        /// The key's scopes.
        scopes: Vec<String>,
    },
    /// Background work started on behalf of the tenant by trusted code.
    System {
        /// What the work is, for the audit trail.
        job: &'static str,
    },
}

/// The tenant a piece of work runs for, who acts, and with which role.
///
/// There is deliberately no public constructor: a context comes only from something
/// authenticated ([`crate::Tenantry::authenticate_api_key`], [`crate::Tenantry::member_context`],
/// provisioning) and travels explicitly from there, never from a request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    tenant_id: Uuid,
    actor: Actor,
    role: MemberRole,
}

impl TenantContext {
    pub(crate) fn new(tenant_id: Uuid, actor: Actor, role: MemberRole) -> Self {
        Self {
            tenant_id,
            actor,
            role,
        }
    }

    /// The tenant.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// Who acts.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The acting user, if a user acts.
    pub fn user_id(&self) -> Option<Uuid> {
        match self.actor {
            Actor::User { user_id } => Some(user_id),
            _ => None,
        }
    }

    /// The acting API key, if a key acts.
    pub fn api_key_id(&self) -> Option<Uuid> {
        match self.actor {
            Actor::ApiKey { key_id, .. } => Some(key_id),
            _ => None,
        }
    }

    /// The role the actor holds in the tenant (an API key acts as a member unless it has the
    /// `admin` scope).
    pub fn role(&self) -> MemberRole {
        self.role
    }

    /// Fails unless the actor may write.
    pub fn require_write(&self) -> Result<(), ServiceError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "a {} cannot change data",
                self.role
            )))
        }
    }

    /// Fails unless the actor may administer the tenant.
    pub fn require_admin(&self) -> Result<(), ServiceError> {
        if self.role.can_administer() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "a {} cannot administer the tenant",
                self.role
            )))
        }
    }

    /// A context for background work of the same tenant, keeping the role.
    pub fn for_job(&self, job: &'static str) -> Self {
        Self {
            tenant_id: self.tenant_id,
            actor: Actor::System { job },
            role: self.role,
        }
    }
}
