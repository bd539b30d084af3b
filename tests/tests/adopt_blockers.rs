//! Each unsafe shape is reported with what to do and refused, and a refused adoption changes
//! nothing: a table without a primary key, a materialized view over adopted tables, a foreign key
//! from a global table into an adopted one, a SECURITY DEFINER function reading adopted tables
//! (also with a SQL-standard `BEGIN ATOMIC` body), a trigger writing another table (also behind
//! a comment, by MERGE, by dynamic SQL, through a helper function), a `tenant_id` of another
//! type. The same schemas without the offending object plan cleanly (so each blocker is what
//! refuses).

mod adopt_support;
mod common;

use adopt_support::{count, tenant_columns};
use migration::adoption::{self, Adoption, Phase, record};
use sea_orm::ConnectionTrait;
use sea_orm_migration::SchemaManager;
use tenantry_tests::logins::LoginRole;

/// `(schema, DDL creating it with one blocker, the fragment the blocker must say, DDL removing
/// the blocker)`.
const CASES: [(&str, &str, &str, &str); 15] = [
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
        // A SQL-standard body: `prosrc` is empty, the definition and pg_depend are not.
        "b_atomic",
        "CREATE TABLE b_atomic.secrets (id uuid PRIMARY KEY, value text);
         CREATE FUNCTION b_atomic.peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER
           BEGIN ATOMIC SELECT count(*) FROM b_atomic.secrets; END;",
        "SECURITY DEFINER function b_atomic.peek reads secrets",
        "ALTER FUNCTION b_atomic.peek() SECURITY INVOKER;",
    ),
    (
        // A comment between the keywords, and a decoy in a string literal and a comment.
        "b_trgcomment",
        "CREATE TABLE b_trgcomment.items (id bigserial PRIMARY KEY, name text);
         CREATE TABLE b_trgcomment.history (id bigserial PRIMARY KEY, item_id bigint, name text);
         CREATE FUNCTION b_trgcomment.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN
             RAISE NOTICE 'insert into b_trgcomment.items'; -- insert into b_trgcomment.items
             INSERT /* audit */ INTO b_trgcomment.history (item_id, name) VALUES (NEW.id, NEW.name);
             RETURN NEW;
           END$$;
         CREATE TRIGGER remember AFTER INSERT ON b_trgcomment.items FOR EACH ROW EXECUTE FUNCTION b_trgcomment.remember();",
        "trigger remember on b_trgcomment.items (function b_trgcomment.remember) writes to b_trgcomment.history",
        "DROP TRIGGER remember ON b_trgcomment.items;",
    ),
    (
        "b_trgmerge",
        "CREATE TABLE b_trgmerge.items (id bigserial PRIMARY KEY, name text);
         CREATE TABLE b_trgmerge.latest (item_id bigint PRIMARY KEY, name text);
         CREATE FUNCTION b_trgmerge.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN
             MERGE INTO b_trgmerge.latest l USING (SELECT NEW.id AS id, NEW.name AS name) n ON l.item_id = n.id
               WHEN MATCHED THEN UPDATE SET name = n.name
               WHEN NOT MATCHED THEN INSERT (item_id, name) VALUES (n.id, n.name);
             RETURN NEW;
           END$$;
         CREATE TRIGGER remember AFTER INSERT ON b_trgmerge.items FOR EACH ROW EXECUTE FUNCTION b_trgmerge.remember();",
        "trigger remember on b_trgmerge.items (function b_trgmerge.remember) writes to b_trgmerge.latest",
        "DROP TRIGGER remember ON b_trgmerge.items;",
    ),
    (
        "b_trgexecute",
        "CREATE TABLE b_trgexecute.items (id bigserial PRIMARY KEY, name text);
         CREATE TABLE b_trgexecute.history (id bigserial PRIMARY KEY, item_id bigint);
         CREATE FUNCTION b_trgexecute.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN
             EXECUTE format('INSERT INTO %I.%I (item_id) VALUES ($1)', 'b_trgexecute', 'history') USING NEW.id;
             RETURN NEW;
           END$$;
         CREATE TRIGGER remember AFTER INSERT ON b_trgexecute.items FOR EACH ROW EXECUTE FUNCTION b_trgexecute.remember();",
        "trigger remember on b_trgexecute.items (function b_trgexecute.remember) runs dynamic SQL",
        "DROP TRIGGER remember ON b_trgexecute.items;",
    ),
    (
        "b_trghelper",
        "CREATE TABLE b_trghelper.items (id bigserial PRIMARY KEY, name text);
         CREATE TABLE b_trghelper.history (id bigserial PRIMARY KEY, item_id bigint);
         CREATE FUNCTION b_trghelper.log_item(bigint) RETURNS void LANGUAGE sql AS
           'INSERT INTO b_trghelper.history (item_id) VALUES ($1)';
         CREATE FUNCTION b_trghelper.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN PERFORM b_trghelper.log_item(NEW.id); RETURN NEW; END$$;
         CREATE TRIGGER remember AFTER INSERT ON b_trghelper.items FOR EACH ROW EXECUTE FUNCTION b_trghelper.remember();",
        "trigger remember on b_trghelper.items (function b_trghelper.remember) calls the function log_item",
        "DROP TRIGGER remember ON b_trghelper.items;",
    ),
    (
        // `name'\'` is a typed literal (`name` then the string `'\'`), not an E'' string: the
        // INSERT after it is code.
        "b_typedlit",
        r"CREATE TABLE b_typedlit.orders (id bigserial PRIMARY KEY, customer text);
         CREATE TABLE b_typedlit.audit_log (id bigserial PRIMARY KEY, msg text);
         CREATE FUNCTION b_typedlit.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN PERFORM name'\'; INSERT INTO b_typedlit.audit_log(msg) VALUES (NEW.customer); PERFORM 'x'; RETURN NEW; END$$;
         CREATE TRIGGER remember AFTER INSERT ON b_typedlit.orders FOR EACH ROW EXECUTE FUNCTION b_typedlit.remember();",
        "trigger remember on b_typedlit.orders (function b_typedlit.remember) writes to b_typedlit.audit_log",
        "DROP TRIGGER remember ON b_typedlit.orders;",
    ),
    (
        // The same table name in another schema is another table.
        "b_qual",
        "CREATE SCHEMA b_qualarchive;
         CREATE TABLE b_qual.orders (id bigserial PRIMARY KEY, customer text);
         CREATE TABLE b_qualarchive.orders (id bigint, customer text);
         CREATE FUNCTION b_qual.archive() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO b_qualarchive.orders (id, customer) VALUES (NEW.id, NEW.customer); RETURN NEW; END$$;
         CREATE TRIGGER archive AFTER INSERT ON b_qual.orders FOR EACH ROW EXECUTE FUNCTION b_qual.archive();",
        "trigger archive on b_qual.orders (function b_qual.archive) writes to b_qualarchive.orders",
        "DROP TRIGGER archive ON b_qual.orders;",
    ),
    (
        // Dynamic SQL in a SECURITY DEFINER function: the table name is built at run time.
        "b_defdynamic",
        "CREATE TABLE b_defdynamic.orders (id uuid PRIMARY KEY, customer text);
         CREATE FUNCTION b_defdynamic.customers() RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER AS
           $$BEGIN RETURN QUERY EXECUTE 'SELECT customer FROM b_defdynamic.ord' || 'ers'; END$$;",
        "SECURITY DEFINER function b_defdynamic.customers runs dynamic SQL (EXECUTE)",
        "ALTER FUNCTION b_defdynamic.customers() SECURITY INVOKER;",
    ),
    (
        // A SECURITY DEFINER function reading through a helper of its own.
        "b_defcall",
        "CREATE TABLE b_defcall.orders (id uuid PRIMARY KEY, customer text);
         CREATE FUNCTION b_defcall.all_customers() RETURNS SETOF text LANGUAGE sql AS
           'SELECT customer FROM b_defcall.orders';
         CREATE FUNCTION b_defcall.customers() RETURNS SETOF text LANGUAGE sql SECURITY DEFINER AS
           'SELECT * FROM b_defcall.all_customers()';",
        "SECURITY DEFINER function b_defcall.customers calls the function all_customers",
        "ALTER FUNCTION b_defcall.customers() SECURITY INVOKER;",
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

/// Names are compared qualified: a SECURITY DEFINER function reading `fp2.all_orders` does not
/// block adopting `fp3` (which has its own `all_orders`), a trigger of `fp3.all_orders` writing
/// unqualified `all_orders` under `SET search_path = fp3` writes its own table, and one under
/// `SET search_path = fp2` writes another schema's table and is a blocker.
#[tokio::test]
async fn names_are_compared_qualified() -> anyhow::Result<()> {
    let db = common::migrated_db().await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    owner
        .execute_unprepared(
            "CREATE SCHEMA fp2; CREATE SCHEMA fp3;
             CREATE TABLE fp2.all_orders (id bigint PRIMARY KEY, note text);
             CREATE TABLE fp3.all_orders (id bigint PRIMARY KEY, note text);
             CREATE FUNCTION fp2.order_count() RETURNS bigint LANGUAGE sql SECURITY DEFINER
               AS 'SELECT count(*) FROM fp2.all_orders';
             CREATE FUNCTION fp3.touch() RETURNS trigger LANGUAGE plpgsql SET search_path = fp3 AS
               $$BEGIN UPDATE all_orders SET note = 'seen' WHERE id = NEW.id; RETURN NEW; END$$;
             CREATE TRIGGER touch AFTER INSERT ON fp3.all_orders FOR EACH ROW EXECUTE FUNCTION fp3.touch();
             CREATE FUNCTION fp3.copy() RETURNS trigger LANGUAGE plpgsql SET search_path = fp2 AS
               $$BEGIN INSERT INTO all_orders (id, note) VALUES (NEW.id, NEW.note); RETURN NEW; END$$;
             CREATE TRIGGER copy AFTER INSERT ON fp3.all_orders FOR EACH ROW EXECUTE FUNCTION fp3.copy();",
        )
        .await?;
    let plan = adoption::plan(&owner, &Adoption::new("fp3")).await?;
    assert_eq!(
        plan.blockers.len(),
        1,
        "expected only the fp2 write: {:?}",
        plan.blockers
    );
    assert!(
        plan.blockers[0]
            .contains("trigger copy on fp3.all_orders (function fp3.copy) writes to all_orders"),
        "{:?}",
        plan.blockers
    );
    owner
        .execute_unprepared("DROP TRIGGER copy ON fp3.all_orders")
        .await?;
    let plan = adoption::plan(&owner, &Adoption::new("fp3")).await?;
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
    owner.close().await?;
    Ok(())
}
