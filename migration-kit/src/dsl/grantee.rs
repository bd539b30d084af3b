//! Who a privilege or policy applies to.

use sea_query::{DynIden, IntoIden};

/// A role named in `TO …` / `FROM …` of a grant, revoke or policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// A named role, rendered as a quoted identifier.
    Role(DynIden),
    /// Every role, rendered as `PUBLIC`.
    Public,
}

impl Grantee {
    /// A named role.
    pub fn role<T: IntoIden>(role: T) -> Self {
        Self::Role(role.into_iden())
    }
}
