//! The declaration: which tables, which tenant rule, which phase.

/// Which tables of the schema become tenant-scoped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Exactly these.
    Only(Vec<String>),
    /// Every table of the schema except these (declared global).
    AllExcept(Vec<String>),
}

/// Which tenant each existing row gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRule {
    /// Every existing row belongs to the default tenant.
    DefaultTenant,
    /// Every row of `table` becomes a tenant named from `name_column`; every other adopted table
    /// inherits its tenant through its foreign keys toward `table`.
    Root {
        /// The root table (e.g. `organizations`, `stores`).
        table: String,
        /// The column the tenant's name comes from.
        name_column: String,
    },
}

/// How far an adoption goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Phase 1: `tenant_id` columns and the backfill. The application is unaffected.
    Columns,
    /// Phase 2: NOT NULL, tenant-inclusive keys, composite foreign keys, widened uniques, row
    /// level security, policies, grants (requires phase 1).
    Enforce,
    /// Both.
    All,
}

/// An adoption: the one place that says what becomes tenant-scoped and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The schema.
    pub schema: String,
    /// Which tables.
    pub selection: Selection,
    /// Which tenant existing rows get.
    pub rule: TenantRule,
    /// `TABLE.COLUMN`s: the foreign key to follow toward the root where a table has several.
    pub tenant_paths: Vec<(String, String)>,
    /// Rows with no tenant under the root rule (NULL root names, no path to the root) go to the
    /// default tenant instead of refusing the plan.
    pub orphans_to_default: bool,
}

impl Adoption {
    /// Every table of `schema`, default tenant.
    pub fn new(schema: &str) -> Self {
        Self {
            schema: schema.into(),
            selection: Selection::AllExcept(vec![]),
            rule: TenantRule::DefaultTenant,
            tenant_paths: vec![],
            orphans_to_default: false,
        }
    }

    /// Every table except these, which stay global.
    pub fn global(mut self, tables: &[&str]) -> Self {
        self.selection = Selection::AllExcept(tables.iter().map(|t| (*t).to_owned()).collect());
        self
    }

    /// Exactly these tables.
    pub fn only(mut self, tables: &[&str]) -> Self {
        self.selection = Selection::Only(tables.iter().map(|t| (*t).to_owned()).collect());
        self
    }

    /// Every row of `table` becomes a tenant, named from `name_column`.
    pub fn tenant_root(mut self, table: &str, name_column: &str) -> Self {
        self.rule = TenantRule::Root {
            table: table.into(),
            name_column: name_column.into(),
        };
        self
    }

    /// Follow `table.column`'s foreign key toward the root.
    pub fn tenant_path(mut self, table: &str, column: &str) -> Self {
        self.tenant_paths.push((table.into(), column.into()));
        self
    }

    /// Send rows without a tenant to the default tenant instead of refusing.
    pub fn orphans_to_default(mut self) -> Self {
        self.orphans_to_default = true;
        self
    }

    /// The name this adoption is recorded under.
    pub fn record_name(&self) -> String {
        format!("adopt_{}", self.schema)
    }

    /// The declaration as Rust source (for `--write-migration`).
    pub fn to_rust(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|t| format!("{t:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = format!("Adoption::new({:?})", self.schema);
        match &self.selection {
            Selection::Only(t) => s.push_str(&format!("\n        .only(&[{}])", list(t))),
            Selection::AllExcept(t) if !t.is_empty() => {
                s.push_str(&format!("\n        .global(&[{}])", list(t)))
            }
            Selection::AllExcept(_) => {}
        }
        if let TenantRule::Root { table, name_column } = &self.rule {
            s.push_str(&format!(
                "\n        .tenant_root({table:?}, {name_column:?})"
            ));
        }
        for (t, c) in &self.tenant_paths {
            s.push_str(&format!("\n        .tenant_path({t:?}, {c:?})"));
        }
        if self.orphans_to_default {
            s.push_str("\n        .orphans_to_default()");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_declaration_round_trips_as_rust_source() {
        let adoption = Adoption::new("shop")
            .global(&["countries"])
            .tenant_root("stores", "name")
            .tenant_path("orders", "store_id")
            .orphans_to_default();
        assert_eq!(
            adoption.to_rust(),
            "Adoption::new(\"shop\")\n        .global(&[\"countries\"])\n        .tenant_root(\"stores\", \"name\")\n        .tenant_path(\"orders\", \"store_id\")\n        .orphans_to_default()"
        );
        assert_eq!(Adoption::new("shop").to_rust(), "Adoption::new(\"shop\")");
        assert_eq!(adoption.record_name(), "adopt_shop");
    }
}
