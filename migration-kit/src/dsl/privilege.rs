//! Privileges that can be granted on database objects.

/// A privilege named in `GRANT`/`REVOKE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Privilege {
    /// `SELECT`
    Select,
    /// `INSERT`
    Insert,
    /// `UPDATE`
    Update,
    /// `DELETE`
    Delete,
    /// `TRUNCATE`
    Truncate,
    /// `REFERENCES`
    References,
    /// `TRIGGER`
    Trigger,
    /// `USAGE`
    Usage,
    /// `EXECUTE`
    Execute,
    /// `CREATE`
    Create,
    /// `CONNECT`
    Connect,
    /// `TEMPORARY`
    Temporary,
    /// `ALL PRIVILEGES`
    All,
}

impl Privilege {
    /// The SQL keyword(s) for this privilege.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Truncate => "TRUNCATE",
            Self::References => "REFERENCES",
            Self::Trigger => "TRIGGER",
            Self::Usage => "USAGE",
            Self::Execute => "EXECUTE",
            Self::Create => "CREATE",
            Self::Connect => "CONNECT",
            Self::Temporary => "TEMPORARY",
            Self::All => "ALL PRIVILEGES",
        }
    }
}
