use super::{Render, ident};

/// `CREATE SCHEMA [IF NOT EXISTS] name`.
#[derive(Debug, Clone)]
pub struct SchemaCreate {
    name: String,
}

impl SchemaCreate {
    /// Creates schema `name` if absent.
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }
    /// The inverse: drop it (RESTRICT: fails if anything is still inside).
    pub fn reverse(&self) -> SchemaDrop {
        SchemaDrop {
            name: self.name.clone(),
            cascade: false,
        }
    }
}

impl Render for SchemaCreate {
    fn to_sql(&self) -> String {
        format!("CREATE SCHEMA IF NOT EXISTS {}", ident(&self.name))
    }
}

/// `DROP SCHEMA IF EXISTS name [CASCADE]`.
#[derive(Debug, Clone)]
pub struct SchemaDrop {
    name: String,
    cascade: bool,
}

impl SchemaDrop {
    /// Drops schema `name` and everything in it.
    pub fn cascade(name: &str) -> Self {
        Self {
            name: name.into(),
            cascade: true,
        }
    }
}

impl Render for SchemaDrop {
    fn to_sql(&self) -> String {
        format!(
            "DROP SCHEMA IF EXISTS {}{}",
            ident(&self.name),
            if self.cascade { " CASCADE" } else { "" }
        )
    }
}
