//! `CREATE ROLE` / `DROP ROLE`, with guarded variants.

use sea_query::{DynIden, IntoIden};

/// Entry point for roles.
#[derive(Debug, Clone, Copy)]
pub struct Role;

/// `CREATE ROLE "r" NOLOGIN INHERIT NOBYPASSRLS NOSUPERUSER NOCREATEDB
/// NOCREATEROLE NOREPLICATION`.
///
/// Only `LOGIN` and `INHERIT` can be chosen; the powerful attributes are
/// always switched off explicitly and there is no way to set a password:
/// the DSL creates roles that can only ever be what the grants make them.
///
/// With [`if_not_exists`](Self::if_not_exists) the statement becomes a `DO`
/// block that creates the role only when `pg_roles` has no role of that name.
/// Two concurrent runs can still race; the loser then fails on `CREATE ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCreateStatement {
    pub(crate) name: Option<DynIden>,
    pub(crate) login: bool,
    pub(crate) inherit: bool,
    pub(crate) if_not_exists: bool,
}

/// `DROP ROLE [IF EXISTS] "r"`, or a guarded drop with
/// [`if_unused`](Self::if_unused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleDropStatement {
    pub(crate) name: Option<DynIden>,
    pub(crate) if_exists: bool,
    pub(crate) if_unused: bool,
}

impl Role {
    /// Starts a [`RoleCreateStatement`].
    pub fn create() -> RoleCreateStatement {
        RoleCreateStatement::default()
    }

    /// Starts a [`RoleDropStatement`].
    pub fn drop() -> RoleDropStatement {
        RoleDropStatement::default()
    }
}

impl Default for RoleCreateStatement {
    fn default() -> Self {
        Self {
            name: None,
            login: false,
            inherit: true,
            if_not_exists: false,
        }
    }
}

impl RoleCreateStatement {
    /// Sets the role name.
    pub fn name<T: IntoIden>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into_iden());
        self
    }

    /// `LOGIN`: the role can open sessions.
    pub fn login(&mut self) -> &mut Self {
        self.login = true;
        self
    }

    /// `NOLOGIN` (the default): a group role.
    pub fn no_login(&mut self) -> &mut Self {
        self.login = false;
        self
    }

    /// `INHERIT` (the default): uses its groups' privileges directly.
    pub fn inherit(&mut self) -> &mut Self {
        self.inherit = true;
        self
    }

    /// `NOINHERIT`: must `SET ROLE` to use its groups' privileges.
    pub fn no_inherit(&mut self) -> &mut Self {
        self.inherit = false;
        self
    }

    /// Create the role only if no role of that name exists (as a `DO` block).
    pub fn if_not_exists(&mut self) -> &mut Self {
        self.if_not_exists = true;
        self
    }

    /// The role name, if set.
    pub fn get_name(&self) -> Option<&DynIden> {
        self.name.as_ref()
    }

    /// A guarded drop of the same role: `if_exists` and `if_unused`, since
    /// roles are shared by every database of the cluster.
    pub fn reverse(&self) -> RoleDropStatement {
        RoleDropStatement {
            name: self.name.clone(),
            if_exists: true,
            if_unused: true,
        }
    }
}

impl RoleDropStatement {
    /// Sets the role name.
    pub fn name<T: IntoIden>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into_iden());
        self
    }

    /// `IF EXISTS`.
    pub fn if_exists(&mut self) -> &mut Self {
        self.if_exists = true;
        self
    }

    /// Renders a `DO` block that drops the role only when it is safe for
    /// the rest of the cluster: the role exists, nothing in another database
    /// (nor any shared object such as a database) depends on it according to
    /// `pg_shdepend`, and it has no members or memberships left in
    /// `pg_auth_members`. Otherwise it drops nothing and raises a `NOTICE`
    /// saying why. A missing role is skipped whether or not
    /// [`if_exists`](Self::if_exists) is set. Dependencies in the current
    /// database are not checked: if some remain, `DROP ROLE` fails loudly.
    pub fn if_unused(&mut self) -> &mut Self {
        self.if_unused = true;
        self
    }
}
