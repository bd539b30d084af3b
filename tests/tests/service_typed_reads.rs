//! `TenantTx`'s typed reads and insert (`find_by_id`, `get`, `list`, `insert`) read each row
//! at its position into the model (`service/src/rows.rs`) rather than by name as SeaORM does.
//! These tests hold them to SeaORM's own by-name read of the same rows on the same transaction:
//! the same models, field for field, for the built-in entities (text, uuid, jsonb, arrays,
//! timestamps, NULLs) and for a table of the user's own with a field of a type the positional
//! read leaves to SeaORM (`Vec<f64>`), beside `DateTimeUtc` on `timestamptz` and `i16`, which
//! must still read, as before. An array element its field refuses (a label a `Vec<enum>` does
//! not know) is an error on both the tenant transaction and the one-round-trip path, never a
//! panic.

mod service_support;

use anyhow::{Result, ensure};
use entity::{documents, projects};
use migration::tenant_table::TenantTable;
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder};
use service::tx::all;
use service::{Page, TenantTx};
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

/// A table of the user's own, with fields of types the positional read does not decode.
mod readings {
    use sea_orm::entity::prelude::*;

    /// A row of `public.readings`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "readings")]
    pub struct Model {
        /// The tenant.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// The reading's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// When it was taken (`timestamptz`, read as UTC).
        pub taken_at: DateTimeUtc,
        /// The samples (`float8[]`).
        pub samples: Vec<f64>,
        /// A small count (`int2`).
        pub count: i16,
        /// A note, often NULL.
        pub note: Option<String>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl entity::TenantScoped for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

/// A table of the user's own with an array of an enum of its own.
mod palettes {
    use sea_orm::entity::prelude::*;

    /// A colour the application knows.
    #[derive(Clone, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "Text")]
    pub enum Colour {
        /// Red.
        #[sea_orm(string_value = "red")]
        Red,
        /// Blue.
        #[sea_orm(string_value = "blue")]
        Blue,
    }

    /// A row of `public.palettes`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "palettes")]
    pub struct Model {
        /// The tenant.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// The palette's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Its colours (`text[]`).
        pub colours: Vec<Colour>,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl entity::TenantScoped for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

/// A table of the user's own that was never made tenant-scoped (no row level security), whose
/// trigger moves every new row to another tenant: the bug the tenant check on what `TenantTx`
/// reads back is there for.
mod drifting {
    use sea_orm::entity::prelude::*;

    /// A row of `public.drifting`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "drifting")]
    pub struct Model {
        /// The tenant.
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// The row's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl entity::TenantScoped for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

/// Creates `public.<table>` (`columns` after its `id`) as the owner and makes it tenant-scoped.
async fn user_table(env: &service_support::Env, table: &str, columns: &str) -> Result<()> {
    let owner_db = env.db.connect(LoginRole::Owner, 1).await?;
    owner_db
        .execute_unprepared(&format!(
            "CREATE TABLE public.{table} (id uuid NOT NULL DEFAULT gen_random_uuid() \
             PRIMARY KEY, {columns})"
        ))
        .await?;
    for sql in TenantTable::new("public", table)
        .without_created_at()
        .plan()
        .render_up_in(false)
    {
        owner_db.execute_unprepared(&sql).await?;
    }
    owner_db.close().await?;
    Ok(())
}

/// SeaORM's own read of every row of `E` this tenant has, by name, on the same transaction.
async fn by_name<E: entity::TenantScoped>(
    tx: &TenantTx,
    order: E::Column,
) -> Result<Vec<E::Model>> {
    Ok(tx
        .select::<E>()
        .order_by(order, Order::Desc)
        .all(tx.conn())
        .await?)
}

#[tokio::test]
async fn typed_reads_give_the_models_seaorms_read_by_name_gives() -> Result<()> {
    let env = service_support::env().await?;
    let owner = service_support::user(&env.svc, "typed@example.test", "Typed").await?;
    let (_, ctx) = service_support::tenant(&env.svc, "Typed", "typed", "free", owner).await?;

    let tx = env.svc.begin(&ctx).await?;
    let mut inserted = Vec::new();
    for i in 0..5 {
        inserted.push(
            tx.insert(projects::ActiveModel {
                name: Set(format!("project {i}")),
                description: Set(if i % 2 == 0 {
                    String::new()
                } else {
                    "ü ✓".into()
                }),
                metadata: Set(serde_json::json!({ "i": i, "nested": [1, null, "x"] })),
                ..Default::default()
            })
            .await?,
        );
    }
    let project = inserted[0].clone();
    let doc = tx
        .insert(documents::ActiveModel {
            id: Set(Uuid::new_v4()),
            project_id: Set(project.id),
            title: Set("doc".into()),
            body: Set("body".into()),
            tags: Set(vec!["a".into(), "b, c".into(), String::new()]),
            ..Default::default()
        })
        .await?;

    let projects_by_name = by_name::<projects::Entity>(&tx, projects::Column::CreatedAt).await?;
    let listed = tx
        .list::<projects::Entity>(
            all(),
            vec![(projects::Column::CreatedAt, Order::Desc)],
            Page::default(),
        )
        .await?;
    ensure!(listed.len() == 5, "{listed:?}");
    let mut a = listed.clone();
    let mut b = projects_by_name.clone();
    a.sort_by_key(|p| p.id);
    b.sort_by_key(|p| p.id);
    ensure!(a == b, "list: {a:?}\nby name: {b:?}");
    let mut ins = inserted.clone();
    ins.sort_by_key(|p| p.id);
    ensure!(ins == b, "insert returned: {ins:?}\nby name: {b:?}");
    for p in &inserted {
        let found = tx.get::<projects::Entity>("project", p.id).await?;
        ensure!(&found == p, "{found:?} vs {p:?}");
    }
    ensure!(
        tx.find_by_id::<projects::Entity>(Uuid::new_v4())
            .await?
            .is_none(),
        "an unknown id finds nothing"
    );

    let docs_by_name = by_name::<documents::Entity>(&tx, documents::Column::CreatedAt).await?;
    ensure!(
        docs_by_name == vec![doc.clone()],
        "{docs_by_name:?} vs {doc:?}"
    );
    let found = tx.get::<documents::Entity>("document", doc.id).await?;
    ensure!(found == doc, "{found:?} vs {doc:?}");
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_user_table_of_types_not_read_by_position_still_reads() -> Result<()> {
    let env = service_support::env().await?;
    user_table(
        &env,
        "readings",
        "taken_at timestamptz NOT NULL DEFAULT now(), samples float8[] NOT NULL, \
         count int2 NOT NULL, note text",
    )
    .await?;
    let owner = service_support::user(&env.svc, "readings@example.test", "R").await?;
    let (_, ctx) = service_support::tenant(&env.svc, "Readings", "readings", "free", owner).await?;

    let tx = env.svc.begin(&ctx).await?;
    let first = tx
        .insert(readings::ActiveModel {
            samples: Set(vec![1.5, -0.25]),
            count: Set(3),
            ..Default::default()
        })
        .await?;
    let second = tx
        .insert(readings::ActiveModel {
            samples: Set(Vec::new()),
            count: Set(-1),
            note: Set(Some("n".into())),
            ..Default::default()
        })
        .await?;
    ensure!(
        first.samples == vec![1.5, -0.25] && first.note.is_none(),
        "{first:?}"
    );
    let mut by_name = by_name::<readings::Entity>(&tx, readings::Column::TakenAt).await?;
    let mut listed = tx
        .list::<readings::Entity>(all(), Vec::new(), Page::default())
        .await?;
    by_name.sort_by_key(|r| r.id);
    listed.sort_by_key(|r| r.id);
    let mut both = vec![first.clone(), second.clone()];
    both.sort_by_key(|r| r.id);
    ensure!(
        listed == by_name && listed == both,
        "{listed:?}\n{by_name:?}\n{both:?}"
    );
    let found = tx.get::<readings::Entity>("reading", second.id).await?;
    ensure!(found == second, "{found:?} vs {second:?}");
    // The rows are the tenant's own: another tenant's transaction reads none of them.
    let other_owner = service_support::user(&env.svc, "other@example.test", "O").await?;
    let (_, other) =
        service_support::tenant(&env.svc, "Other", "other", "free", other_owner).await?;
    tx.commit().await?;
    let rows = env
        .svc
        .with_tenant(&other, async |tx| {
            tx.list::<readings::Entity>(all(), Vec::new(), Page::default())
                .await
        })
        .await?;
    ensure!(rows.is_empty(), "{rows:?}");
    Ok(())
}

#[tokio::test]
async fn an_array_element_its_field_refuses_is_an_error_not_a_panic() -> Result<()> {
    use palettes::Colour;
    let env = service_support::env().await?;
    user_table(&env, "palettes", "colours text[] NOT NULL").await?;
    let owner = service_support::user(&env.svc, "palettes@example.test", "P").await?;
    let (_, ctx) = service_support::tenant(&env.svc, "Palettes", "palettes", "free", owner).await?;

    let tx = env.svc.begin(&ctx).await?;
    let good = tx
        .insert(palettes::ActiveModel {
            colours: Set(vec![Colour::Red, Colour::Blue]),
            ..Default::default()
        })
        .await?;
    ensure!(good.colours == vec![Colour::Red, Colour::Blue], "{good:?}");
    let found = tx.get::<palettes::Entity>("palette", good.id).await?;
    ensure!(found == good, "{found:?} vs {good:?}");
    // A label this release does not know, written by hand (or by a newer release).
    let bad = Uuid::new_v4();
    tx.conn()
        .execute_unprepared(&format!(
            "INSERT INTO public.palettes (id, colours) VALUES ('{bad}', ARRAY['red', 'green'])"
        ))
        .await?;
    let err = tx
        .get::<palettes::Entity>("palette", bad)
        .await
        .expect_err("an unknown label is an error");
    ensure!(
        !err.to_string().contains("green"),
        "the error names no stored value: {err}"
    );
    let listed = tx
        .list::<palettes::Entity>(all(), Vec::new(), Page::default())
        .await;
    ensure!(listed.is_err(), "{listed:?}");
    tx.commit().await?;

    // The one-round-trip path refuses the row the same way.
    let one_trip = env.svc.fetch_all(&ctx, palettes::Entity::find()).await;
    ensure!(one_trip.is_err(), "{one_trip:?}");
    // And the service still serves the tenant afterwards.
    let ok = env
        .svc
        .fetch_one(
            &ctx,
            palettes::Entity::find().filter(palettes::Column::Id.eq(good.id)),
        )
        .await?;
    ensure!(ok.as_ref() == Some(&good), "{ok:?}");
    Ok(())
}

#[tokio::test]
async fn a_row_read_back_for_another_tenant_is_refused_and_rolled_back() -> Result<()> {
    let env = service_support::env().await?;
    let owner_db = env.db.connect(LoginRole::Owner, 1).await?;
    let elsewhere = Uuid::new_v4();
    owner_db
        .execute_unprepared(&format!(
            "CREATE TABLE public.drifting (tenant_id uuid NOT NULL, \
               id uuid NOT NULL DEFAULT gen_random_uuid(), PRIMARY KEY (tenant_id, id)); \
             CREATE FUNCTION public.drift() RETURNS trigger LANGUAGE plpgsql AS \
               $$BEGIN NEW.tenant_id := '{elsewhere}'; RETURN NEW; END$$; \
             CREATE TRIGGER drift BEFORE INSERT ON public.drifting \
               FOR EACH ROW EXECUTE FUNCTION public.drift(); \
             GRANT SELECT, INSERT ON public.drifting TO {}",
            migration::names::APP_ROLE
        ))
        .await?;
    owner_db.close().await?;
    let owner = service_support::user(&env.svc, "drift@example.test", "D").await?;
    let (_, ctx) = service_support::tenant(&env.svc, "Drift", "drift", "free", owner).await?;

    let err = env
        .svc
        .with_tenant(&ctx, async |tx| {
            tx.insert(drifting::ActiveModel {
                ..Default::default()
            })
            .await
        })
        .await
        .expect_err("the row came back as another tenant's");
    ensure!(
        matches!(err, service::ServiceError::Unavailable(_)),
        "{err:?}"
    );
    ensure!(
        !err.to_string().contains(&elsewhere.to_string()),
        "the error names no other tenant: {err}"
    );
    let left = service_support::scalar(&env.su, "SELECT count(*) FROM public.drifting", []).await?;
    ensure!(left == 0, "the insert was rolled back: {left}");
    Ok(())
}
