//! Each unsafe shape is reported with what to do and refused, and a refused adoption changes
//! nothing: a table without a primary key, a materialized view over adopted tables, a foreign key
//! from a global table into an adopted one, a SECURITY DEFINER function reading adopted tables, a
//! trigger writing another table, a `tenant_id` of another type. The same schemas without the
//! offending object plan cleanly (so each blocker is what refuses).

mod adopt_support;
mod common;

use adopt_support::{count, tenant_columns};
use migration::adoption::{self, Adoption, Phase, record};
use sea_orm::ConnectionTrait;
use sea_orm_migration::SchemaManager;
use tenantry_tests::logins::LoginRole;

/// `(schema, DDL creating it with one blocker, the fragment the blocker must say, DDL removing
/// the blocker)`.
const CASES: [(&str, &str, &str, &str); 6] = [
    (
        "b_nokey",
        "CREATE TABLE b_nokey.events (at timestamptz, what text);",
        "b_nokey.events: no primary key",
        "ALTER TABLE b_nokey.events ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;",
    ),
    (
        "b_matview",
        "CREATE TABLE b_matview.orders (id serial PRIMARY KEY, total numeric);
         CREATE MATERIALIZED VIEW b_matview.totals AS SELECT sum(total) FROM b_matview.orders;",
        "materialized view b_matview.totals holds every tenant's rows of orders",
        "DROP MATERIALIZED VIEW b_matview.totals;",
    ),
    (
        "b_globalfk",
        "CREATE TABLE b_globalfk.shops (id serial PRIMARY KEY);
         CREATE TABLE b_globalfk.banners (id serial PRIMARY KEY, shop_id int REFERENCES b_globalfk.shops (id));",
        "b_globalfk.banners (global) references the adopted b_globalfk.shops",
        "ALTER TABLE b_globalfk.banners DROP CONSTRAINT banners_shop_id_fkey;",
    ),
    (
        "b_definer",
        "CREATE TABLE b_definer.secrets (id uuid PRIMARY KEY, value text);
         CREATE FUNCTION b_definer.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER
           AS 'SELECT count(*) FROM b_definer.secrets';",
        "SECURITY DEFINER function b_definer.peek reads secrets",
        "ALTER FUNCTION b_definer.peek() SECURITY INVOKER;",
    ),
    (
        "b_trigger",
        "CREATE TABLE b_trigger.items (id bigserial PRIMARY KEY, name text);
         CREATE TABLE b_trigger.history (id bigserial PRIMARY KEY, item_id bigint, name text);
         CREATE FUNCTION b_trigger.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO b_trigger.history (item_id, name) VALUES (NEW.id, NEW.name); RETURN NEW; END$$;
         CREATE TRIGGER remember AFTER INSERT ON b_trigger.items FOR EACH ROW EXECUTE FUNCTION b_trigger.remember();",
        "trigger remember on b_trigger.items (function b_trigger.remember) writes to b_trigger.history",
        "DROP TRIGGER remember ON b_trigger.items;",
    ),
    (
        "b_tenanttype",
        "CREATE TABLE b_tenanttype.notes (id serial PRIMARY KEY, tenant_id integer);",
        "b_tenanttype.notes: a tenant_id column of type integer already exists",
        "ALTER TABLE b_tenanttype.notes RENAME COLUMN tenant_id TO legacy_tenant;",
    ),
];

#[tokio::test]
async fn every_blocker_is_reported_refused_and_changes_nothing() -> anyhow::Result<()> {
    let db = common::migrated_db().await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let su = db.connect_superuser().await?;
    for (schema, ddl, expected, fix) in CASES {
        owner
            .execute_unprepared(&format!("CREATE SCHEMA {schema}; {ddl}"))
            .await?;
        let mut declaration = Adoption::new(schema);
        if schema == "b_globalfk" {
            declaration = declaration.only(&["shops"]);
        }
        if schema == "b_tenanttype" {
            owner
                .execute_unprepared("INSERT INTO b_tenanttype.notes (tenant_id) VALUES (7)")
                .await?;
        }
        let plan = adoption::plan(&owner, &declaration).await?;
        assert!(
            plan.blockers.iter().any(|b| b.contains(expected)),
            "{schema}: no blocker {expected:?} in {:?}",
            plan.blockers
        );
        let err = record::apply(&SchemaManager::new(&owner), &plan, Phase::All)
            .await
            .expect_err("a blocked plan was applied");
        assert!(
            err.to_string().contains("refused, nothing changed"),
            "{err}"
        );
        let new_columns = count(
            &su,
            &format!(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{schema}' \
                 AND column_name = 'tenant_id' AND data_type = 'uuid'"
            ),
        )
        .await?;
        assert_eq!(new_columns, 0, "{schema}: a refused plan changed something");
        owner.execute_unprepared(fix).await?;
        let fixed = adoption::plan(&owner, &declaration).await?;
        assert!(
            fixed.blockers.is_empty(),
            "{schema}: still blocked after the fix: {:?}",
            fixed.blockers
        );
    }
    // Phase 2 before phase 1 is refused too, with nothing changed.
    let plan = adoption::plan(&owner, &Adoption::new("b_nokey")).await?;
    let err = record::apply(&SchemaManager::new(&owner), &plan, Phase::Enforce)
        .await
        .expect_err("phase 2 ran without phase 1");
    assert!(err.to_string().contains("needs phase 1"), "{err}");
    // Nothing was recorded either.
    assert_eq!(
        count(
            &su,
            "SELECT count(*) FROM pg_class WHERE relname = 'adoptions'"
        )
        .await?,
        0
    );
    assert_eq!(tenant_columns(&su, "b_nokey").await?, 0);
    owner.close().await?;
    su.close().await?;
    Ok(())
}
