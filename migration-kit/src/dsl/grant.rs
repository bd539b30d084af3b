//! `GRANT` / `REVOKE` of privileges and of role membership.

use sea_query::{DynIden, IntoIden};

use super::{GrantObject, Grantee, Privilege};

/// Entry point for grants.
#[derive(Debug, Clone, Copy)]
pub struct Grant;

/// Entry point for revokes.
#[derive(Debug, Clone, Copy)]
pub struct Revoke;

/// `GRANT <privileges> ON <object> TO <grantees> [WITH GRANT OPTION]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GrantStatement {
    pub(crate) privileges: Vec<Privilege>,
    pub(crate) object: Option<GrantObject>,
    pub(crate) grantees: Vec<Grantee>,
    pub(crate) with_grant_option: bool,
}

/// `REVOKE <privileges> ON <object> FROM <grantees> [CASCADE]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RevokeStatement {
    pub(crate) privileges: Vec<Privilege>,
    pub(crate) object: Option<GrantObject>,
    pub(crate) grantees: Vec<Grantee>,
    pub(crate) cascade: bool,
}

/// `GRANT "group" TO "member", …`: role membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrantStatement {
    pub(crate) group: DynIden,
    pub(crate) members: Vec<DynIden>,
}

/// `REVOKE "group" FROM "member", …`: ends role membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRevokeStatement {
    pub(crate) group: DynIden,
    pub(crate) members: Vec<DynIden>,
}

impl Grant {
    /// Starts a [`GrantStatement`] for `privileges`.
    pub fn privileges<I: IntoIterator<Item = Privilege>>(privileges: I) -> GrantStatement {
        GrantStatement {
            privileges: privileges.into_iter().collect(),
            ..GrantStatement::default()
        }
    }

    /// Starts a [`RoleGrantStatement`] making members of `group`.
    pub fn role<T: IntoIden>(group: T) -> RoleGrantStatement {
        RoleGrantStatement {
            group: group.into_iden(),
            members: Vec::new(),
        }
    }
}

impl Revoke {
    /// Starts a [`RevokeStatement`] for `privileges`.
    pub fn privileges<I: IntoIterator<Item = Privilege>>(privileges: I) -> RevokeStatement {
        RevokeStatement {
            privileges: privileges.into_iter().collect(),
            ..RevokeStatement::default()
        }
    }

    /// Starts a [`RoleRevokeStatement`] removing members from `group`.
    pub fn role<T: IntoIden>(group: T) -> RoleRevokeStatement {
        RoleRevokeStatement {
            group: group.into_iden(),
            members: Vec::new(),
        }
    }
}

impl GrantStatement {
    /// Sets the object the privileges are on.
    pub fn on(&mut self, object: GrantObject) -> &mut Self {
        self.object = Some(object);
        self
    }

    /// Adds a grantee role; may be called repeatedly.
    pub fn to<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.grantees.push(Grantee::role(role));
        self
    }

    /// Adds `PUBLIC` as a grantee.
    pub fn to_public(&mut self) -> &mut Self {
        self.grantees.push(Grantee::Public);
        self
    }

    /// Adds a grantee.
    pub fn grantee(&mut self, grantee: Grantee) -> &mut Self {
        self.grantees.push(grantee);
        self
    }

    /// `WITH GRANT OPTION`: grantees may grant the privileges on.
    pub fn with_grant_option(&mut self) -> &mut Self {
        self.with_grant_option = true;
        self
    }

    /// The matching `REVOKE` (without `CASCADE`; revoking a privilege also
    /// revokes its grant option).
    pub fn reverse(&self) -> RevokeStatement {
        RevokeStatement {
            privileges: self.privileges.clone(),
            object: self.object.clone(),
            grantees: self.grantees.clone(),
            cascade: false,
        }
    }
}

impl RevokeStatement {
    /// Sets the object the privileges are on.
    pub fn on(&mut self, object: GrantObject) -> &mut Self {
        self.object = Some(object);
        self
    }

    /// Adds a role to revoke from; may be called repeatedly.
    pub fn from<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.grantees.push(Grantee::role(role));
        self
    }

    /// Adds `PUBLIC` to revoke from.
    pub fn from_public(&mut self) -> &mut Self {
        self.grantees.push(Grantee::Public);
        self
    }

    /// Adds a grantee to revoke from.
    pub fn grantee(&mut self, grantee: Grantee) -> &mut Self {
        self.grantees.push(grantee);
        self
    }

    /// `CASCADE`: also revoke what the grantees granted on.
    pub fn cascade(&mut self) -> &mut Self {
        self.cascade = true;
        self
    }

    /// The matching `GRANT` (without `WITH GRANT OPTION`).
    pub fn reverse(&self) -> GrantStatement {
        GrantStatement {
            privileges: self.privileges.clone(),
            object: self.object.clone(),
            grantees: self.grantees.clone(),
            with_grant_option: false,
        }
    }
}

impl RoleGrantStatement {
    /// Adds a member role; may be called repeatedly.
    pub fn to<T: IntoIden>(&mut self, member: T) -> &mut Self {
        self.members.push(member.into_iden());
        self
    }

    /// The matching `REVOKE "group" FROM …`.
    pub fn reverse(&self) -> RoleRevokeStatement {
        RoleRevokeStatement {
            group: self.group.clone(),
            members: self.members.clone(),
        }
    }
}

impl RoleRevokeStatement {
    /// Adds a member role to remove; may be called repeatedly.
    pub fn from<T: IntoIden>(&mut self, member: T) -> &mut Self {
        self.members.push(member.into_iden());
        self
    }

    /// The matching `GRANT "group" TO …`.
    pub fn reverse(&self) -> RoleGrantStatement {
        RoleGrantStatement {
            group: self.group.clone(),
            members: self.members.clone(),
        }
    }
}
