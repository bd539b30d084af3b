//! [`TenantSchema`]: the name of a dedicated tenant's schema (and of its role), parsed, never
//! built from input.

use std::fmt;

use uuid::Uuid;

/// The schema name every tenant-schema migration is rendered for before it is stored as a
/// template; provisioning and `up` replace it by the real [`TenantSchema`] (same length, same
/// characters, so the replacement can never change the statement's shape).
pub const PLACEHOLDER: &str = "t_00000000000000000000000000000000";

/// `t_<32 lowercase hex digits>`, derived from a tenant's uuid only: the schema of a dedicated
/// tenant, and the NOLOGIN role that alone may use it. The only constructors are
/// [`TenantSchema::for_tenant`] and [`TenantSchema::parse`], so a value of this type is always
/// a safe identifier, wherever it is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSchema(String);

/// A string that is not a tenant schema name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a tenant schema name (t_ and 32 lowercase hex digits): {0:?}")]
pub struct InvalidTenantSchema(pub String);

impl TenantSchema {
    /// The schema of tenant `id`.
    pub fn for_tenant(id: Uuid) -> Self {
        Self(format!("t_{}", id.simple()))
    }

    /// Parses a name read back from the catalog or `tenancy.tenants`.
    pub fn parse(name: &str) -> Result<Self, InvalidTenantSchema> {
        let hex = name
            .strip_prefix("t_")
            .filter(|h| h.len() == 32 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or_else(|| InvalidTenantSchema(name.to_owned()))?;
        Uuid::parse_str(hex).map_err(|_| InvalidTenantSchema(name.to_owned()))?;
        Ok(Self(name.to_owned()))
    }

    /// The tenant this schema belongs to.
    pub fn tenant_id(&self) -> Uuid {
        // Only parse() and for_tenant() construct the value: the hex always parses.
        Uuid::parse_str(&self.0[2..]).unwrap_or_default()
    }

    /// The name (a valid, unquoted-safe identifier).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Renders a template statement (written for [`PLACEHOLDER`]) for this schema.
    pub fn render(&self, template: &str) -> String {
        template.replace(PLACEHOLDER, &self.0)
    }
}

impl fmt::Display for TenantSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_from_the_uuid_and_parsed_back() {
        let id = Uuid::new_v4();
        let schema = TenantSchema::for_tenant(id);
        assert_eq!(schema.as_str().len(), PLACEHOLDER.len());
        assert_eq!(TenantSchema::parse(schema.as_str()), Ok(schema.clone()));
        assert_eq!(schema.tenant_id(), id);
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "t_",
            "public",
            "t_0123",
            "T_0123456789abcdef0123456789abcdef",
            "t_0123456789ABCDEF0123456789abcdef",
            "t_0123456789abcdef0123456789abcdeg",
            "t_0123456789abcdef0123456789abcdef0",
            "t_0123456789abcdef\"; DROP SCHEMA x",
        ] {
            assert!(TenantSchema::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
