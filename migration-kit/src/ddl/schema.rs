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

/// `ALTER TABLE schema.table SET SCHEMA to`: moves a table with its rows, keys, indexes,
/// constraints, triggers, policies and grants (foreign keys pointing at it follow it).
#[derive(Debug, Clone)]
pub struct TableSetSchema {
    schema: String,
    table: String,
    to: String,
}

impl TableSetSchema {
    /// Moves `schema.table` into schema `to`.
    pub fn new(schema: &str, table: &str, to: &str) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            to: to.into(),
        }
    }
    /// The inverse: moves it back.
    pub fn reverse(&self) -> Self {
        Self::new(&self.to, &self.table, &self.schema)
    }
}

impl Render for TableSetSchema {
    fn to_sql(&self) -> String {
        format!(
            "ALTER TABLE {}.{} SET SCHEMA {}",
            ident(&self.schema),
            ident(&self.table),
            ident(&self.to)
        )
    }
}
