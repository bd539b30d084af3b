use super::{Render, ident, qualified};

/// An object whose owner can change.
#[derive(Debug, Clone)]
pub enum OwnedObject {
    /// A function, by schema, name and argument types.
    Function {
        /// Its schema.
        schema: String,
        /// Its name.
        name: String,
        /// Argument type names, e.g. `["text"]`.
        args: Vec<String>,
    },
}

/// `ALTER ... OWNER TO role`, e.g. handing a SECURITY DEFINER function to a least-privileged
/// role so it runs with that role's rights rather than the migration owner's.
#[derive(Debug, Clone)]
pub struct OwnerAlter {
    object: OwnedObject,
    /// `None` renders `CURRENT_USER` (the login running the migration).
    to: Option<String>,
}

impl OwnerAlter {
    /// Changes the owner of a function.
    pub fn function(schema: &str, name: &str, args: &[&str], to: &str) -> Self {
        Self {
            object: OwnedObject::Function {
                schema: schema.into(),
                name: name.into(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
            },
            to: Some(to.into()),
        }
    }

    /// The inverse: hand it back to the login running the migration.
    pub fn reverse(&self) -> Self {
        Self {
            object: self.object.clone(),
            to: None,
        }
    }
}

impl Render for OwnerAlter {
    fn to_sql(&self) -> String {
        let to = self
            .to
            .as_deref()
            .map_or_else(|| "CURRENT_USER".to_owned(), ident);
        match &self.object {
            OwnedObject::Function { schema, name, args } => format!(
                "ALTER FUNCTION {}({}) OWNER TO {to}",
                qualified(schema, name),
                args.join(", ")
            ),
        }
    }
}
