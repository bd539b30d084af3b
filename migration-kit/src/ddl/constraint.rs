use sea_orm::sea_query::{Expr, ForeignKeyAction};

use super::{Render, expr_sql, ident, ident_list, qualified};

/// What a constraint is.
#[derive(Debug, Clone)]
pub enum ConstraintKind {
    /// `CHECK (expr)`.
    Check(Expr),
    /// `PRIMARY KEY (cols)`.
    PrimaryKey(Vec<String>),
    /// `PRIMARY KEY USING INDEX idx`: adopts a unique index built beforehand.
    PrimaryKeyUsingIndex(String),
    /// `UNIQUE (cols)`.
    Unique(Vec<String>),
    /// `UNIQUE USING INDEX idx`: adopts a unique index built beforehand.
    UniqueUsingIndex(String),
    /// `FOREIGN KEY (cols) REFERENCES schema.table (cols) ON DELETE ...`.
    ForeignKey {
        /// Referencing columns.
        columns: Vec<String>,
        /// Referenced schema.
        ref_schema: String,
        /// Referenced table.
        ref_table: String,
        /// Referenced columns.
        ref_columns: Vec<String>,
        /// The delete action.
        on_delete: Option<ForeignKeyAction>,
    },
}

/// `ALTER TABLE ... ADD CONSTRAINT name ... [NOT VALID]`.
#[derive(Debug, Clone)]
pub struct ConstraintAdd {
    schema: String,
    table: String,
    name: String,
    kind: ConstraintKind,
    not_valid: bool,
}

impl ConstraintAdd {
    /// A new constraint `name` on `schema.table`.
    pub fn new(schema: &str, table: &str, name: &str, kind: ConstraintKind) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            name: name.into(),
            kind,
            not_valid: false,
        }
    }

    /// `NOT VALID`: only new rows are checked now; existing ones by a later
    /// [`ConstraintValidate`], which does not block writers. (CHECK and FOREIGN KEY only.)
    pub fn not_valid(mut self) -> Self {
        self.not_valid = matches!(
            self.kind,
            ConstraintKind::Check(_) | ConstraintKind::ForeignKey { .. }
        );
        self
    }

    /// The constraint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The inverse: drop it.
    pub fn reverse(&self) -> ConstraintDrop {
        ConstraintDrop::new(&self.schema, &self.table, &self.name)
    }

    /// The matching `VALIDATE CONSTRAINT`.
    pub fn validate(&self) -> ConstraintValidate {
        ConstraintValidate {
            schema: self.schema.clone(),
            table: self.table.clone(),
            name: self.name.clone(),
        }
    }
}

fn action_sql(action: ForeignKeyAction) -> &'static str {
    match action {
        ForeignKeyAction::Cascade => "CASCADE",
        ForeignKeyAction::SetNull => "SET NULL",
        ForeignKeyAction::SetDefault => "SET DEFAULT",
        ForeignKeyAction::Restrict => "RESTRICT",
        _ => "NO ACTION",
    }
}

impl Render for ConstraintAdd {
    fn to_sql(&self) -> String {
        let body = match &self.kind {
            ConstraintKind::Check(e) => format!("CHECK ({})", expr_sql(e)),
            ConstraintKind::PrimaryKey(cols) => format!("PRIMARY KEY ({})", ident_list(cols)),
            ConstraintKind::PrimaryKeyUsingIndex(idx) => {
                format!("PRIMARY KEY USING INDEX {}", ident(idx))
            }
            ConstraintKind::Unique(cols) => format!("UNIQUE ({})", ident_list(cols)),
            ConstraintKind::UniqueUsingIndex(idx) => format!("UNIQUE USING INDEX {}", ident(idx)),
            ConstraintKind::ForeignKey {
                columns,
                ref_schema,
                ref_table,
                ref_columns,
                on_delete,
            } => {
                let mut s = format!(
                    "FOREIGN KEY ({}) REFERENCES {} ({})",
                    ident_list(columns),
                    qualified(ref_schema, ref_table),
                    ident_list(ref_columns)
                );
                if let Some(a) = on_delete {
                    s.push_str(" ON DELETE ");
                    s.push_str(action_sql(*a));
                }
                s
            }
        };
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {body}{}",
            qualified(&self.schema, &self.table),
            ident(&self.name),
            if self.not_valid { " NOT VALID" } else { "" }
        )
    }
}

/// `ALTER TABLE ... DROP CONSTRAINT [IF EXISTS] name`.
#[derive(Debug, Clone)]
pub struct ConstraintDrop {
    schema: String,
    table: String,
    name: String,
    if_exists: bool,
}

impl ConstraintDrop {
    /// Drops constraint `name` of `schema.table`.
    pub fn new(schema: &str, table: &str, name: &str) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            name: name.into(),
            if_exists: true,
        }
    }
}

impl Render for ConstraintDrop {
    fn to_sql(&self) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}{}",
            qualified(&self.schema, &self.table),
            if self.if_exists { "IF EXISTS " } else { "" },
            ident(&self.name)
        )
    }
}

/// `ALTER TABLE ... VALIDATE CONSTRAINT name`: scans under SHARE UPDATE EXCLUSIVE, so writers
/// go on while it runs.
#[derive(Debug, Clone)]
pub struct ConstraintValidate {
    schema: String,
    table: String,
    name: String,
}

impl Render for ConstraintValidate {
    fn to_sql(&self) -> String {
        format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            qualified(&self.schema, &self.table),
            ident(&self.name)
        )
    }
}
