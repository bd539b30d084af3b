//! `ALTER TABLE … ENABLE | DISABLE | FORCE | NO FORCE ROW LEVEL SECURITY`.

use sea_query::{IntoTableRef, TableRef};

/// Entry point for row level security switches.
#[derive(Debug, Clone, Copy)]
pub struct RowLevelSecurity;

/// What a [`RowLevelSecurityStatement`] does to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowLevelSecurityAction {
    /// `ENABLE ROW LEVEL SECURITY`
    Enable,
    /// `DISABLE ROW LEVEL SECURITY`
    Disable,
    /// `FORCE ROW LEVEL SECURITY` (policies also apply to the table owner)
    Force,
    /// `NO FORCE ROW LEVEL SECURITY`
    NoForce,
}

impl RowLevelSecurityAction {
    /// The action that undoes this one.
    pub fn reverse(self) -> Self {
        match self {
            Self::Enable => Self::Disable,
            Self::Disable => Self::Enable,
            Self::Force => Self::NoForce,
            Self::NoForce => Self::Force,
        }
    }
}

/// `ALTER TABLE "t" <action> ROW LEVEL SECURITY`.
///
/// The table may be schema-qualified (`("tenancy", "tenants")`). An alias on
/// the table reference is ignored; a reference that is not a table name (a
/// sub-query, `VALUES` list or function call) renders as an SQL comment, so
/// PostgreSQL rejects the statement instead of touching another table.
#[derive(Debug, Clone, PartialEq)]
pub struct RowLevelSecurityStatement {
    pub(crate) table: TableRef,
    pub(crate) action: RowLevelSecurityAction,
}

impl RowLevelSecurity {
    /// `ALTER TABLE "t" ENABLE ROW LEVEL SECURITY`
    pub fn enable<T: IntoTableRef>(table: T) -> RowLevelSecurityStatement {
        RowLevelSecurityStatement::new(table, RowLevelSecurityAction::Enable)
    }

    /// `ALTER TABLE "t" DISABLE ROW LEVEL SECURITY`
    pub fn disable<T: IntoTableRef>(table: T) -> RowLevelSecurityStatement {
        RowLevelSecurityStatement::new(table, RowLevelSecurityAction::Disable)
    }

    /// `ALTER TABLE "t" FORCE ROW LEVEL SECURITY`
    pub fn force<T: IntoTableRef>(table: T) -> RowLevelSecurityStatement {
        RowLevelSecurityStatement::new(table, RowLevelSecurityAction::Force)
    }

    /// `ALTER TABLE "t" NO FORCE ROW LEVEL SECURITY`
    pub fn no_force<T: IntoTableRef>(table: T) -> RowLevelSecurityStatement {
        RowLevelSecurityStatement::new(table, RowLevelSecurityAction::NoForce)
    }
}

impl RowLevelSecurityStatement {
    /// A statement applying `action` to `table`.
    pub fn new<T: IntoTableRef>(table: T, action: RowLevelSecurityAction) -> Self {
        Self {
            table: table.into_table_ref(),
            action,
        }
    }

    /// The table the statement alters.
    pub fn table(&self) -> &TableRef {
        &self.table
    }

    /// What the statement does.
    pub fn action(&self) -> RowLevelSecurityAction {
        self.action
    }

    /// The statement that undoes this one (enable ↔ disable, force ↔ no force).
    pub fn reverse(&self) -> RowLevelSecurityStatement {
        Self {
            table: self.table.clone(),
            action: self.action.reverse(),
        }
    }
}
