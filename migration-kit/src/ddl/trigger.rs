use super::{Render, ident, qualified};

/// `CREATE TRIGGER name {BEFORE UPDATE | AFTER UPDATE OR DELETE} ON table FOR EACH ROW
/// EXECUTE FUNCTION f()`.
#[derive(Debug, Clone)]
pub struct TriggerCreate {
    name: String,
    schema: String,
    table: String,
    function: (String, String),
    timing: &'static str,
}

impl TriggerCreate {
    /// A row-level `BEFORE UPDATE` trigger calling `function` (schema, name).
    pub fn before_update(name: &str, schema: &str, table: &str, function: (&str, &str)) -> Self {
        Self {
            name: name.into(),
            schema: schema.into(),
            table: table.into(),
            function: (function.0.into(), function.1.into()),
            timing: "BEFORE UPDATE",
        }
    }

    /// A row-level `AFTER UPDATE OR DELETE` trigger calling `function` (schema, name).
    pub fn after_update_or_delete(
        name: &str,
        schema: &str,
        table: &str,
        function: (&str, &str),
    ) -> Self {
        Self {
            timing: "AFTER UPDATE OR DELETE",
            ..Self::before_update(name, schema, table, function)
        }
    }

    /// The inverse: drop it.
    pub fn reverse(&self) -> TriggerDrop {
        TriggerDrop {
            name: self.name.clone(),
            schema: self.schema.clone(),
            table: self.table.clone(),
        }
    }
}

impl Render for TriggerCreate {
    fn to_sql(&self) -> String {
        format!(
            "CREATE TRIGGER {} {} ON {} FOR EACH ROW EXECUTE FUNCTION {}()",
            ident(&self.name),
            self.timing,
            qualified(&self.schema, &self.table),
            qualified(&self.function.0, &self.function.1)
        )
    }
}

/// `DROP TRIGGER IF EXISTS name ON table`.
#[derive(Debug, Clone)]
pub struct TriggerDrop {
    name: String,
    schema: String,
    table: String,
}

impl Render for TriggerDrop {
    fn to_sql(&self) -> String {
        format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            ident(&self.name),
            qualified(&self.schema, &self.table)
        )
    }
}
