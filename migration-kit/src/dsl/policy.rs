//! `CREATE POLICY` / `ALTER POLICY` / `DROP POLICY`.

use sea_query::{DynIden, Expr, IntoIden, IntoTableRef, TableRef};

use super::Grantee;

/// Entry point for row level security policies.
#[derive(Debug, Clone, Copy)]
pub struct Policy;

/// Whether a policy widens (`PERMISSIVE`) or narrows (`RESTRICTIVE`) access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// `AS PERMISSIVE`: rows visible under any permissive policy are allowed.
    #[default]
    Permissive,
    /// `AS RESTRICTIVE`: rows must also pass every restrictive policy.
    Restrictive,
}

/// The command a policy applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PolicyCommand {
    /// `FOR ALL`
    #[default]
    All,
    /// `FOR SELECT`
    Select,
    /// `FOR INSERT`
    Insert,
    /// `FOR UPDATE`
    Update,
    /// `FOR DELETE`
    Delete,
}

impl PolicyCommand {
    /// The SQL keyword, also the spelling of `pg_policies.cmd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::Select => "SELECT",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

/// `CREATE POLICY "n" ON "t" AS PERMISSIVE FOR ALL [TO …] [USING (…)] [WITH CHECK (…)]`.
///
/// `AS` and `FOR` are always rendered; the `TO` clause only when at least one
/// role (or `PUBLIC`) was given. Expressions are rendered with their values
/// inlined, as DDL cannot take bind parameters. See
/// [`RowLevelSecurityStatement`](super::RowLevelSecurityStatement) for how
/// table references are rendered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyCreateStatement {
    pub(crate) name: Option<DynIden>,
    pub(crate) table: Option<TableRef>,
    pub(crate) kind: PolicyKind,
    pub(crate) command: PolicyCommand,
    pub(crate) roles: Vec<Grantee>,
    pub(crate) using: Option<Expr>,
    pub(crate) with_check: Option<Expr>,
}

/// `ALTER POLICY "n" ON "t" [USING (…)] [WITH CHECK (…)]`: replaces the expressions of an
/// existing policy in place (its name, command, kind and roles stay), so the table is never
/// without it, as a drop and a create would leave it between the two.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyAlterStatement {
    pub(crate) name: Option<DynIden>,
    pub(crate) table: Option<TableRef>,
    pub(crate) using: Option<Expr>,
    pub(crate) with_check: Option<Expr>,
}

/// `DROP POLICY [IF EXISTS] "n" ON "t"`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyDropStatement {
    pub(crate) name: Option<DynIden>,
    pub(crate) table: Option<TableRef>,
    pub(crate) if_exists: bool,
}

impl Policy {
    /// Starts a [`PolicyCreateStatement`].
    pub fn create() -> PolicyCreateStatement {
        PolicyCreateStatement::default()
    }

    /// Starts a [`PolicyAlterStatement`].
    pub fn alter() -> PolicyAlterStatement {
        PolicyAlterStatement::default()
    }

    /// Starts a [`PolicyDropStatement`].
    pub fn drop() -> PolicyDropStatement {
        PolicyDropStatement::default()
    }
}

impl PolicyAlterStatement {
    /// Sets the policy name.
    pub fn name<T: IntoIden>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into_iden());
        self
    }

    /// Sets the table the policy is on.
    pub fn table<T: IntoTableRef>(&mut self, table: T) -> &mut Self {
        self.table = Some(table.into_table_ref());
        self
    }

    /// The new `USING` expression.
    pub fn using<E: Into<Expr>>(&mut self, expr: E) -> &mut Self {
        self.using = Some(expr.into());
        self
    }

    /// The new `WITH CHECK` expression.
    pub fn with_check<E: Into<Expr>>(&mut self, expr: E) -> &mut Self {
        self.with_check = Some(expr.into());
        self
    }
}

impl PolicyCreateStatement {
    /// Sets the policy name.
    pub fn name<T: IntoIden>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into_iden());
        self
    }

    /// Sets the table the policy protects (may be schema-qualified).
    pub fn table<T: IntoTableRef>(&mut self, table: T) -> &mut Self {
        self.table = Some(table.into_table_ref());
        self
    }

    /// `AS PERMISSIVE` (the default).
    pub fn permissive(&mut self) -> &mut Self {
        self.kind = PolicyKind::Permissive;
        self
    }

    /// `AS RESTRICTIVE`.
    pub fn restrictive(&mut self) -> &mut Self {
        self.kind = PolicyKind::Restrictive;
        self
    }

    /// Sets the command the policy applies to (default `ALL`).
    pub fn command(&mut self, command: PolicyCommand) -> &mut Self {
        self.command = command;
        self
    }

    /// Adds a role to the `TO` clause; may be called repeatedly.
    pub fn to<T: IntoIden>(&mut self, role: T) -> &mut Self {
        self.roles.push(Grantee::role(role));
        self
    }

    /// Adds `PUBLIC` to the `TO` clause.
    pub fn to_public(&mut self) -> &mut Self {
        self.roles.push(Grantee::Public);
        self
    }

    /// Sets the `USING (…)` expression, checked against existing rows.
    pub fn using<E: Into<Expr>>(&mut self, expr: E) -> &mut Self {
        self.using = Some(expr.into());
        self
    }

    /// Sets the `WITH CHECK (…)` expression, checked against new rows.
    pub fn with_check<E: Into<Expr>>(&mut self, expr: E) -> &mut Self {
        self.with_check = Some(expr.into());
        self
    }

    /// The policy name, if set.
    pub fn get_name(&self) -> Option<&DynIden> {
        self.name.as_ref()
    }

    /// The protected table, if set.
    pub fn get_table(&self) -> Option<&TableRef> {
        self.table.as_ref()
    }

    /// The command the policy applies to.
    pub fn get_command(&self) -> PolicyCommand {
        self.command
    }

    /// Whether the policy is permissive or restrictive.
    pub fn get_kind(&self) -> PolicyKind {
        self.kind
    }

    /// The roles in the `TO` clause (empty means the clause is omitted).
    pub fn get_roles(&self) -> &[Grantee] {
        &self.roles
    }

    /// `DROP POLICY IF EXISTS` for the same name and table.
    pub fn reverse(&self) -> PolicyDropStatement {
        PolicyDropStatement {
            name: self.name.clone(),
            table: self.table.clone(),
            if_exists: true,
        }
    }
}

impl PolicyDropStatement {
    /// Sets the policy name.
    pub fn name<T: IntoIden>(&mut self, name: T) -> &mut Self {
        self.name = Some(name.into_iden());
        self
    }

    /// Sets the table the policy is on.
    pub fn table<T: IntoTableRef>(&mut self, table: T) -> &mut Self {
        self.table = Some(table.into_table_ref());
        self
    }

    /// `IF EXISTS`.
    pub fn if_exists(&mut self) -> &mut Self {
        self.if_exists = true;
        self
    }
}
