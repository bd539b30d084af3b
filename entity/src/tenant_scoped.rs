//! [`TenantScoped`]: the mark of an entity whose rows belong to one tenant.

use std::sync::LazyLock;

/// An entity whose rows belong to one tenant. Implemented once per tenant-scoped entity; the
/// service uses it to filter every query and fill the tenant on insert.
///
/// Inside this crate, implement it with the crate-private `tenant_scoped!(Entity,
/// Column::TenantId);` in the entity's module, and add the entity to [`tenant_scoped_tables`].
///
/// Its active model turns into its model (`TryIntoModel`, which SeaORM's derives implement):
/// the service's one-round-trip path builds models that way.
pub trait TenantScoped:
    sea_orm::EntityTrait<ActiveModel: sea_orm::TryIntoModel<<Self as sea_orm::EntityTrait>::Model>>
{
    /// The column holding the tenant id.
    fn tenant_column() -> Self::Column;
}

/// Implements [`TenantScoped`] for an entity: `tenant_scoped!(Entity, Column::TenantId);` in
/// the entity's module.
macro_rules! tenant_scoped {
    ($entity:ty, $column:expr $(,)?) => {
        impl $crate::tenant_scoped::TenantScoped for $entity {
            fn tenant_column() -> <Self as ::sea_orm::EntityTrait>::Column {
                $column
            }
        }
    };
}
pub(crate) use tenant_scoped;

/// `(schema, table)` of `E`; entities without a schema live in `public`.
fn table_of<E: TenantScoped>() -> (String, &'static str) {
    let entity = E::default();
    let schema = entity.schema_name().unwrap_or("public").to_owned();
    (schema, entity.table_name())
}

/// Every tenant-scoped entity's table, computed once (the schema name is only lent by
/// [`sea_orm::EntityName::schema_name`], so it is kept here to be handed out as `&'static str`).
static TENANT_SCOPED_TABLES: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
    use crate::{
        api_keys, audit_logs, documents, member_roles, projects, role_permissions, roles, tasks,
        tenant_users, usage_events,
    };
    vec![
        table_of::<tenant_users::Entity>(),
        table_of::<roles::Entity>(),
        table_of::<role_permissions::Entity>(),
        table_of::<member_roles::Entity>(),
        table_of::<api_keys::Entity>(),
        table_of::<usage_events::Entity>(),
        table_of::<audit_logs::Entity>(),
        table_of::<projects::Entity>(),
        table_of::<documents::Entity>(),
        table_of::<tasks::Entity>(),
    ]
});

/// `(schema, table)` of every entity implementing [`TenantScoped`], in dependency order
/// (parents before children). It must equal the set of tables with a `tenant_id` column in a
/// migrated database (`migration::audit::tenant_tables`); the `entities_match` test checks it.
pub fn tenant_scoped_tables() -> Vec<(&'static str, &'static str)> {
    TENANT_SCOPED_TABLES
        .iter()
        .map(|(schema, table)| (schema.as_str(), *table))
        .collect()
}
