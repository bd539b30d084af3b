//! Why the adoption's plans knowingly break some of squawk's rules, said once for every plan.
//!
//! `adopt --plan` prints the same SQL that runs, and teams lint it. The planner builds its
//! steps from the shared DDL builders; this module names, per kind of step, the rules such a
//! step breaks on purpose and why, so the printed plan carries squawk's ignore comment with the
//! reason next to each statement (`tests/tests/plans_lint.rs` lints the fixtures' plans).

use crate::plan::{MigrationPlan, Step};

/// The rules a step breaks by its kind (recognised by its label), and why.
const BY_KIND: &[(&str, &[&str], &str)] = &[
    (
        "default to the default tenant",
        &["prefer-robust-stmts"],
        "SET DEFAULT is idempotent: a rerun sets the same default",
    ),
    (
        "defaults to",
        &["prefer-robust-stmts"],
        "SET DEFAULT is idempotent: a rerun sets the same default",
    ),
    (
        "becomes a tenant named from",
        &["prefer-robust-stmts"],
        "one short transaction of its own: the insert is idempotent (deterministic ids, ON CONFLICT DO NOTHING) and FORCE is restored before it commits",
    ),
    (
        ": primary key (",
        &["ban-drop-constraint"],
        "the old primary key is replaced in the same step by the tenant-inclusive one, and a non-unique index keeps the legacy key's lookups",
    ),
    (
        ": drop single-column",
        &["ban-drop-constraint"],
        "replaced by the composite (tenant_id, ...) foreign key this adoption added and validated before the drop",
    ),
    (
        "uses the widened index",
        &["ban-drop-constraint"],
        "the unique constraint is replaced in the same step by its tenant-inclusive version",
    ),
];

/// What a partitioned table's steps break, and why.
const PARTITIONED: (&[&str], &str) = (
    &[
        "require-concurrent-index-creation",
        "require-concurrent-index-deletion",
        "constraint-missing-not-valid",
        "adding-foreign-key-constraint",
        "adding-serial-primary-key-field",
    ],
    "a partitioned table: PostgreSQL 15 can neither build its indexes CONCURRENTLY nor add its constraints NOT VALID, so this step locks the table while it builds (adopt partitioned tables in a quiet window)",
);

/// Annotates every step of `plan` whose kind breaks a rule on purpose; `partitioned` names the
/// adopted partitioned tables as `schema.table`.
pub fn annotate(plan: &mut MigrationPlan, partitioned: &[String]) {
    let labels: Vec<(usize, String)> = plan
        .steps()
        .iter()
        .enumerate()
        .filter_map(|(i, step)| match step {
            Step::Sql(sql) => Some((i, sql.label.clone())),
            _ => None,
        })
        .collect();
    for (index, label) in labels {
        for (kind, rules, reason) in BY_KIND {
            if label.contains(kind) {
                plan.lint_ignore_at(index, rules, reason);
            }
        }
        let on_partitioned = partitioned.iter().any(|qualified| {
            let table = qualified.rsplit('.').next().unwrap_or(qualified);
            label.starts_with(&format!("{qualified}:")) || label.contains(&format!(" {table}_"))
        });
        if on_partitioned {
            plan.lint_ignore_at(index, PARTITIONED.0, PARTITIONED.1);
        }
    }
}
