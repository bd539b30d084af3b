use super::{Render, qualified};

/// `ALTER VIEW schema.view SET (security_invoker = on)`: a view that runs with the querying
/// role's rights, so the row level security of the tables under it applies; its inverse is
/// `RESET (security_invoker)` (the view's option as it was before: unset).
#[derive(Debug, Clone)]
pub struct ViewSecurityInvoker {
    schema: String,
    view: String,
    on: bool,
}

impl ViewSecurityInvoker {
    /// Turns `security_invoker` on.
    pub fn on(schema: &str, view: &str) -> Self {
        Self {
            schema: schema.into(),
            view: view.into(),
            on: true,
        }
    }

    /// The inverse: resets the option.
    pub fn reverse(&self) -> Self {
        Self {
            on: !self.on,
            ..self.clone()
        }
    }
}

impl Render for ViewSecurityInvoker {
    fn to_sql(&self) -> String {
        let view = qualified(&self.schema, &self.view);
        if self.on {
            format!("ALTER VIEW {view} SET (security_invoker = on)")
        } else {
            format!("ALTER VIEW {view} RESET (security_invoker)")
        }
    }
}
