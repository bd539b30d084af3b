//! The tenant-root rule: which foreign key each adopted table follows toward the root, in which
//! order the tables inherit, and the read-only counts taken before anything changes (rows with
//! no path to the root, rows whose paths disagree).

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, JoinType, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr};

use super::catalog::CatForeignKey;
use crate::plan::pg;

/// An edge toward the root: `table` follows `fk` to its parent.
#[derive(Debug, Clone)]
pub struct Edge {
    /// The foreign key followed.
    pub fk: CatForeignKey,
}

/// The chosen tree toward the root.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Each non-root connected table's chosen edge.
    pub chosen: BTreeMap<String, Edge>,
    /// Every other foreign key toward the root, per table (checked for agreement).
    pub alternatives: BTreeMap<String, Vec<CatForeignKey>>,
    /// Connected tables in inheritance order (parents first), root excluded.
    pub order: Vec<String>,
    /// Adopted tables with no foreign-key path to the root.
    pub unconnected: Vec<String>,
    /// Problems choosing (an unknown `--tenant-path`, a cycle).
    pub problems: Vec<String>,
}

/// Chooses, for every adopted table, the foreign key it follows toward `root`.
pub fn tree(
    schema: &str,
    adopted: &BTreeSet<String>,
    root: &str,
    fks: &[CatForeignKey],
    paths: &[(String, String)],
) -> Tree {
    let inner: Vec<&CatForeignKey> = fks
        .iter()
        .filter(|f| {
            f.schema == schema
                && f.ref_schema == schema
                && f.table != f.ref_table
                && adopted.contains(&f.table)
                && adopted.contains(&f.ref_table)
                && f.columns.first().map(String::as_str) != Some(crate::names::TENANT_COLUMN)
        })
        .collect();
    // Distance to the root along foreign keys (fixed point).
    let mut dist: BTreeMap<String, usize> = BTreeMap::from([(root.to_owned(), 0)]);
    loop {
        let mut changed = false;
        for f in &inner {
            if let Some(&d) = dist.get(&f.ref_table)
                && dist.get(&f.table).is_none_or(|&own| own > d + 1)
                && f.table != root
            {
                dist.insert(f.table.clone(), d + 1);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = Tree::default();
    for table in adopted {
        if table == root {
            continue;
        }
        let mut candidates: Vec<&CatForeignKey> = inner
            .iter()
            .copied()
            .filter(|f| &f.table == table && dist.contains_key(&f.ref_table))
            .collect();
        if candidates.is_empty() {
            out.unconnected.push(table.clone());
            continue;
        }
        candidates.sort_by_key(|f| (dist[&f.ref_table], f.name.clone()));
        let picked = paths.iter().find(|(t, _)| t == table).map(|(_, column)| {
            candidates
                .iter()
                .position(|f| f.columns.first() == Some(column))
        });
        let index = match picked {
            Some(Some(i)) => i,
            Some(None) => {
                out.problems.push(format!(
                    "--tenant-path {table}.{}: that column has no foreign key toward the root",
                    paths
                        .iter()
                        .find(|(t, _)| t == table)
                        .map(|(_, c)| c.as_str())
                        .unwrap_or_default()
                ));
                0
            }
            None => 0,
        };
        let fk = candidates.remove(index).clone();
        out.alternatives.insert(
            table.clone(),
            candidates.into_iter().cloned().collect::<Vec<_>>(),
        );
        out.chosen.insert(table.clone(), Edge { fk });
    }
    // Parents first: repeatedly take the tables whose chosen parent is placed.
    let mut placed: BTreeSet<String> = BTreeSet::from([root.to_owned()]);
    let mut left: Vec<String> = out.chosen.keys().cloned().collect();
    while !left.is_empty() {
        let (ready, rest): (Vec<String>, Vec<String>) = left
            .into_iter()
            .partition(|t| placed.contains(&out.chosen[t].fk.ref_table));
        if ready.is_empty() {
            out.problems.push(format!(
                "the chosen tenant paths form a cycle through {}; pick others with --tenant-path",
                rest.join(", ")
            ));
            break;
        }
        placed.extend(ready.iter().cloned());
        out.order.extend(ready);
        left = rest;
    }
    out
}

/// `FROM table t0 LEFT JOIN ... ` along `first` then the chosen edges up to the root; returns
/// the alias of the root row.
fn join_chain(
    q: &mut SelectStatement,
    schema: &str,
    tree: &Tree,
    first: &CatForeignKey,
    prefix: &str,
) -> Alias {
    let mut from = Alias::new("t0");
    let mut fk = first.clone();
    let mut step = 0usize;
    loop {
        step += 1;
        let to = Alias::new(format!("{prefix}{step}"));
        let mut on = Expr::val(true);
        for (c, pc) in fk.columns.iter().zip(&fk.ref_columns) {
            on = on
                .and(Expr::col((to.clone(), Alias::new(pc))).equals((from.clone(), Alias::new(c))));
        }
        q.join_as(
            JoinType::LeftJoin,
            (Alias::new(schema), Alias::new(&fk.ref_table)),
            to.clone(),
            on,
        );
        match tree.chosen.get(&fk.ref_table) {
            Some(edge) if step < 64 => {
                from = to;
                fk = edge.fk.clone();
            }
            _ => return to,
        }
    }
}

async fn count<C: ConnectionTrait>(db: &C, q: &SelectStatement) -> Result<i64, DbErr> {
    Ok(db
        .query_one_raw(pg(q))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0))
}

fn base(schema: &str, table: &str) -> SelectStatement {
    Query::select()
        .expr(Expr::cust("count(*)"))
        .from_as((Alias::new(schema), Alias::new(table)), Alias::new("t0"))
        .to_owned()
}

/// Rows of `table` with no root at the end of its chosen path.
pub async fn orphans<C: ConnectionTrait>(
    db: &C,
    schema: &str,
    tree: &Tree,
    table: &str,
    root_key: &str,
) -> Result<i64, DbErr> {
    let Some(edge) = tree.chosen.get(table) else {
        return Ok(0);
    };
    let mut q = base(schema, table);
    let root = join_chain(&mut q, schema, tree, &edge.fk, "p");
    q.and_where(Expr::col((root, Alias::new(root_key))).is_null());
    count(db, &q).await
}

/// Rows of `table` whose chosen path and `other` lead to different roots.
pub async fn disagreements<C: ConnectionTrait>(
    db: &C,
    schema: &str,
    tree: &Tree,
    table: &str,
    other: &CatForeignKey,
    root_key: &str,
) -> Result<i64, DbErr> {
    let Some(edge) = tree.chosen.get(table) else {
        return Ok(0);
    };
    let mut q = base(schema, table);
    let a = join_chain(&mut q, schema, tree, &edge.fk, "a");
    let b = join_chain(&mut q, schema, tree, other, "b");
    let (ka, kb) = (
        Expr::col((a, Alias::new(root_key))),
        Expr::col((b, Alias::new(root_key))),
    );
    q.and_where(ka.clone().is_not_null())
        .and_where(kb.clone().is_not_null())
        .and_where(ka.ne(kb));
    count(db, &q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fk(table: &str, column: &str, parent: &str) -> CatForeignKey {
        CatForeignKey {
            name: format!("{table}_{column}_fkey"),
            schema: "s".into(),
            table: table.into(),
            columns: vec![column.into()],
            ref_schema: "s".into(),
            ref_table: parent.into(),
            ref_columns: vec!["id".into()],
            on_delete: "a".into(),
        }
    }

    fn adopted(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn follows_the_shortest_path_parents_first_and_keeps_the_other_for_checking() {
        let fks = [
            fk("projects", "org_id", "orgs"),
            fk("workflows", "project_id", "projects"),
            fk("workflows", "org_id", "orgs"),
            fk("steps", "workflow_id", "workflows"),
        ];
        let tree = tree(
            "s",
            &adopted(&["orgs", "projects", "workflows", "steps", "notes"]),
            "orgs",
            &fks,
            &[],
        );
        assert_eq!(tree.chosen["workflows"].fk.columns, ["org_id"]);
        assert_eq!(tree.alternatives["workflows"][0].columns, ["project_id"]);
        let pos = |t: &str| tree.order.iter().position(|o| o == t);
        assert!(pos("projects") < pos("steps") && pos("workflows") < pos("steps"));
        assert_eq!(tree.unconnected, ["notes"]);
        assert!(tree.problems.is_empty());
    }

    #[test]
    fn a_tenant_path_overrides_and_an_unknown_one_is_a_problem() {
        let fks = [
            fk("projects", "org_id", "orgs"),
            fk("workflows", "project_id", "projects"),
            fk("workflows", "org_id", "orgs"),
        ];
        let all = adopted(&["orgs", "projects", "workflows"]);
        let picked = tree(
            "s",
            &all,
            "orgs",
            &fks,
            &[("workflows".into(), "project_id".into())],
        );
        assert_eq!(picked.chosen["workflows"].fk.columns, ["project_id"]);
        assert_eq!(
            picked.order.iter().position(|t| t == "projects"),
            Some(0),
            "the chosen parent comes first"
        );
        let unknown = tree(
            "s",
            &all,
            "orgs",
            &fks,
            &[("workflows".into(), "state".into())],
        );
        assert!(unknown.problems[0].contains("--tenant-path workflows.state"));
    }

    #[test]
    fn foreign_keys_to_tables_outside_the_adoption_are_not_paths() {
        let fks = [
            fk("projects", "org_id", "orgs"),
            fk("projects", "country_id", "countries"),
        ];
        let tree = tree("s", &adopted(&["orgs", "projects"]), "orgs", &fks, &[]);
        assert!(
            !tree.alternatives["projects"]
                .iter()
                .any(|f| f.ref_table == "countries")
        );
    }
}
