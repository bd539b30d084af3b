//! `ALTER DEFAULT PRIVILEGES … GRANT | REVOKE …`.

use sea_query::{DynIden, IntoIden};

use super::{Grantee, Privilege};

/// Entry point for default privileges: what objects created later get.
#[derive(Debug, Clone, Copy)]
pub struct DefaultPrivileges;

/// The kind of future objects default privileges apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefaultObjects {
    /// `TABLES` (including views)
    Tables,
    /// `SEQUENCES`
    Sequences,
    /// `FUNCTIONS`
    Functions,
    /// `TYPES`
    Types,
    /// `SCHEMAS` (not combinable with `IN SCHEMA`)
    Schemas,
}

impl DefaultObjects {
    /// The SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tables => "TABLES",
            Self::Sequences => "SEQUENCES",
            Self::Functions => "FUNCTIONS",
            Self::Types => "TYPES",
            Self::Schemas => "SCHEMAS",
        }
    }
}

/// The parts shared by default-privilege grants and revokes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DefaultPrivilegesSpec {
    pub(crate) for_roles: Vec<DynIden>,
    pub(crate) in_schemas: Vec<DynIden>,
    pub(crate) privileges: Vec<Privilege>,
    pub(crate) objects: Option<DefaultObjects>,
    pub(crate) grantees: Vec<Grantee>,
}

/// `ALTER DEFAULT PRIVILEGES [FOR ROLE "o"] [IN SCHEMA "s"] GRANT <privileges>
/// ON <objects> TO <grantees> [WITH GRANT OPTION]`.
///
/// Without [`for_role`](Self::for_role) the defaults are those of the role
/// running the migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultPrivilegesGrantStatement {
    pub(crate) spec: DefaultPrivilegesSpec,
    pub(crate) with_grant_option: bool,
}

/// `ALTER DEFAULT PRIVILEGES [FOR ROLE "o"] [IN SCHEMA "s"] REVOKE <privileges>
/// ON <objects> FROM <grantees> [CASCADE]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultPrivilegesRevokeStatement {
    pub(crate) spec: DefaultPrivilegesSpec,
    pub(crate) cascade: bool,
}

impl DefaultPrivileges {
    /// Starts a [`DefaultPrivilegesGrantStatement`] for `privileges`.
    pub fn grant<I: IntoIterator<Item = Privilege>>(
        privileges: I,
    ) -> DefaultPrivilegesGrantStatement {
        DefaultPrivilegesGrantStatement {
            spec: DefaultPrivilegesSpec::with_privileges(privileges),
            with_grant_option: false,
        }
    }

    /// Starts a [`DefaultPrivilegesRevokeStatement`] for `privileges`.
    pub fn revoke<I: IntoIterator<Item = Privilege>>(
        privileges: I,
    ) -> DefaultPrivilegesRevokeStatement {
        DefaultPrivilegesRevokeStatement {
            spec: DefaultPrivilegesSpec::with_privileges(privileges),
            cascade: false,
        }
    }
}

impl DefaultPrivilegesSpec {
    fn with_privileges<I: IntoIterator<Item = Privilege>>(privileges: I) -> Self {
        Self {
            privileges: privileges.into_iter().collect(),
            ..Self::default()
        }
    }
}

impl DefaultPrivilegesGrantStatement {
    /// Sets the kind of future objects.
    pub fn on(&mut self, objects: DefaultObjects) -> &mut Self {
        self.spec.objects = Some(objects);
        self
    }

    /// Adds a grantee role; may be called repeatedly.
    pub fn to<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.spec.grantees.push(Grantee::role(role));
        self
    }

    /// Adds `PUBLIC` as a grantee.
    pub fn to_public(&mut self) -> &mut Self {
        self.spec.grantees.push(Grantee::Public);
        self
    }

    /// `FOR ROLE "o"`: objects created by this role; may be called repeatedly.
    pub fn for_role<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.spec.for_roles.push(role.into_iden());
        self
    }

    /// `IN SCHEMA "s"`: objects created in this schema; may be called repeatedly.
    pub fn in_schema<T: IntoIden>(&mut self, schema: T) -> &mut Self {
        self.spec.in_schemas.push(schema.into_iden());
        self
    }

    /// `WITH GRANT OPTION`.
    pub fn with_grant_option(&mut self) -> &mut Self {
        self.with_grant_option = true;
        self
    }

    /// The matching revoke (without `CASCADE`).
    pub fn reverse(&self) -> DefaultPrivilegesRevokeStatement {
        DefaultPrivilegesRevokeStatement {
            spec: self.spec.clone(),
            cascade: false,
        }
    }
}

impl DefaultPrivilegesRevokeStatement {
    /// Sets the kind of future objects.
    pub fn on(&mut self, objects: DefaultObjects) -> &mut Self {
        self.spec.objects = Some(objects);
        self
    }

    /// Adds a role to revoke from; may be called repeatedly.
    pub fn from<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.spec.grantees.push(Grantee::role(role));
        self
    }

    /// Adds `PUBLIC` to revoke from.
    pub fn from_public(&mut self) -> &mut Self {
        self.spec.grantees.push(Grantee::Public);
        self
    }

    /// `FOR ROLE "o"`: objects created by this role; may be called repeatedly.
    pub fn for_role<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.spec.for_roles.push(role.into_iden());
        self
    }

    /// `IN SCHEMA "s"`: objects created in this schema; may be called repeatedly.
    pub fn in_schema<T: IntoIden>(&mut self, schema: T) -> &mut Self {
        self.spec.in_schemas.push(schema.into_iden());
        self
    }

    /// `CASCADE`.
    pub fn cascade(&mut self) -> &mut Self {
        self.cascade = true;
        self
    }

    /// The matching grant (without `WITH GRANT OPTION`).
    pub fn reverse(&self) -> DefaultPrivilegesGrantStatement {
        DefaultPrivilegesGrantStatement {
            spec: self.spec.clone(),
            with_grant_option: false,
        }
    }
}
