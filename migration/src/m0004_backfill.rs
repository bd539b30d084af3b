//! Backfill, part 2: every legacy row gets the default tenant, in short batches outside any
//! long transaction (this migration runs with `use_transaction = false`). Killed halfway, a
//! rerun continues where it stopped; nothing but `tenant_id` is written.

use crate::backfill::Backfill;
use crate::m0003_tenant_columns::legacy_tenant_tables;
use crate::names::{DEFAULT_TENANT_ID, TENANT_COLUMN};
use crate::plan::MigrationPlan;

/// The plan of this migration.
pub fn plan() -> MigrationPlan {
    let mut plan = MigrationPlan::new();
    let default = uuid::Uuid::parse_str(DEFAULT_TENANT_ID).unwrap_or_default();
    for table in legacy_tenant_tables() {
        let (schema, name) = table.name();
        plan.backfill(Backfill::new(schema, name, TENANT_COLUMN, default));
    }
    plan
}
