//! Extending Tenantry with a table of your own (`docs/EXTENDING.md` walks through this file).
//!
//! Three steps, and nothing else: a migration that creates `public.invoices` and makes it
//! tenant-scoped with one call (`TenantTable::new(..).references(..).plan()`), a SeaORM entity
//! with one trait impl (`entity::TenantScoped`), and `TenantTx`'s scoped CRUD on it. Then the
//! guarantees the built-in tables have hold for the new one: each tenant sees and changes only
//! its own invoices, an invoice cannot point at another tenant's project, the catalog audit
//! passes with the new table included, and the isolation matrix attacks it and finds nothing.

use anyhow::Result;
use entity::projects;
use migration::plan::MigrationPlan;
use migration::tenant_table::TenantTable;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Alias, ColumnDef, Expr, Index, Table};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DeriveIden, Statement};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager, async_trait};
use service::tx::all;
use service::{Page, ServiceError, TenantContext, Tenantry, TenantryConfig};
use tenantry_tests::TestDb;
use tenantry_tests::isolation::{self, Cell, IsolationTarget};
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Step 1: the migration
// ---------------------------------------------------------------------------------------------

/// The new table's identifiers.
#[derive(DeriveIden)]
enum Invoices {
    Table,
    Id,
    ProjectId,
    AmountCents,
    CreatedAt,
}

/// `public.invoices`, made tenant-scoped: the `tenant_id` column, the `(tenant_id, id)` key,
/// the composite reference to `projects`, indexes, forced row level security with the standard
/// policies, and grants.
fn invoices_tenancy() -> MigrationPlan {
    TenantTable::new("public", "invoices")
        .references("project_id", "public", "projects")
        .plan()
}

/// The user's migration.
struct CreateInvoices;

impl MigrationName for CreateInvoices {
    fn name(&self) -> &str {
        "m1000_create_invoices"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateInvoices {
    async fn up(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        manager
            .create_table(
                Table::create()
                    .table((Alias::new("public"), Invoices::Table))
                    .col(
                        ColumnDef::new(Invoices::Id)
                            .uuid()
                            .not_null()
                            .default(Expr::cust("gen_random_uuid()")),
                    )
                    .col(ColumnDef::new(Invoices::ProjectId).uuid().not_null())
                    .col(
                        ColumnDef::new(Invoices::AmountCents)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Invoices::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null()
                            .default(Expr::cust("now()")),
                    )
                    .primary_key(Index::create().col(Invoices::Id))
                    .to_owned(),
            )
            .await?;
        // The one call. `true`: sea-orm-migration already runs this migration in a transaction.
        invoices_tenancy().up(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), sea_orm::DbErr> {
        invoices_tenancy().down(manager, true).await?;
        manager
            .drop_table(
                Table::drop()
                    .table((Alias::new("public"), Invoices::Table))
                    .to_owned(),
            )
            .await
    }
}

/// The application's migrator: Tenantry's migrations, then the application's own.
struct AppMigrator;

#[async_trait::async_trait]
impl MigratorTrait for AppMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = migration::Migrator::migrations();
        all.push(Box::new(CreateInvoices));
        all
    }
}

// ---------------------------------------------------------------------------------------------
// Step 2: the entity
// ---------------------------------------------------------------------------------------------

/// `public.invoices` as a SeaORM entity.
mod invoices {
    use sea_orm::entity::prelude::*;

    /// A row of `public.invoices`.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(schema_name = "public", table_name = "invoices")]
    pub struct Model {
        /// The tenant (filled in by `TenantTx::insert`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: Uuid,
        /// The invoice's id (the database fills it when not set).
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// The project billed, in the same tenant.
        pub project_id: Uuid,
        /// The amount, in cents.
        pub amount_cents: i64,
        /// When the row was inserted.
        pub created_at: DateTimeWithTimeZone,
    }

    /// No relations are needed for scoped CRUD.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    /// The one trait impl that makes the service filter and fill `tenant_id`.
    impl entity::TenantScoped for Entity {
        fn tenant_column() -> Column {
            Column::TenantId
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn stmt(sql: &str, values: impl IntoIterator<Item = sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

async fn scalar_i64<C: ConnectionTrait>(
    conn: &C,
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Result<i64> {
    let row = conn
        .query_one_raw(stmt(sql, values))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row from {sql}"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// A migrated database with the application's migration applied as the owner.
async fn extended_db() -> Result<TestDb> {
    let db = tenantry_tests::migrated_db().await?;
    let owner = migration::run::connect(&db.url(LoginRole::Owner)).await?;
    AppMigrator::up(&owner, None).await?;
    owner.close().await?;
    Ok(db)
}

/// A tenant with an owner (created as the superuser) and the owner's context.
async fn tenant(
    su: &DatabaseConnection,
    tenantry: &Tenantry,
    slug: &str,
) -> Result<(Uuid, TenantContext)> {
    let (tenant, user) = (Uuid::new_v4(), Uuid::new_v4());
    for (sql, values) in [
        (
            "INSERT INTO tenancy.tenants (id, name, slug) VALUES ($1, $2, $2)",
            vec![tenant.into(), slug.into()],
        ),
        (
            "INSERT INTO tenancy.users (id, email) VALUES ($1, $2)",
            vec![user.into(), format!("{user}@example.test").into()],
        ),
        (
            "INSERT INTO tenancy.tenant_users (tenant_id, user_id, role) VALUES ($1, $2, 'owner')",
            vec![tenant.into(), user.into()],
        ),
    ] {
        su.execute_raw(stmt(sql, values)).await?;
    }
    Ok((tenant, tenantry.member_context(tenant, user).await?))
}

fn page() -> Page {
    Page {
        limit: 100,
        offset: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Step 3: scoped CRUD, and the guarantees
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_table_is_tenant_scoped_with_one_call_one_impl_and_scoped_crud() -> Result<()> {
    let db = extended_db().await?;
    let su = db.connect_superuser().await?;
    let tenantry =
        Tenantry::connect(TenantryConfig::new(db.url(LoginRole::App)).with_pool(2)).await?;
    let (a, a_ctx) = tenant(&su, &tenantry, "invoicer-a").await?;
    let (b, b_ctx) = tenant(&su, &tenantry, "invoicer-b").await?;

    // Each tenant: a project and invoices for it, with nothing but TenantTx.
    let mut made = Vec::new();
    for (ctx, amounts) in [(&a_ctx, vec![100, 250]), (&b_ctx, vec![999])] {
        let tx = tenantry.begin(ctx).await?;
        let project = tx
            .insert(projects::ActiveModel {
                name: Set("billing".into()),
                ..Default::default()
            })
            .await?;
        let mut ids = Vec::new();
        for amount in amounts {
            let invoice = tx
                .insert(invoices::ActiveModel {
                    project_id: Set(project.id),
                    amount_cents: Set(amount),
                    ..Default::default()
                })
                .await?;
            assert_eq!(invoice.tenant_id, ctx.tenant_id());
            ids.push(invoice.id);
        }
        tx.commit().await?;
        made.push((project.id, ids));
    }
    let (a_project, a_invoices) = &made[0];
    let (b_project, b_invoices) = &made[1];

    // A sees exactly its invoices, B's are not found, and A's writes cannot reach B's.
    let tx = tenantry.begin(&a_ctx).await?;
    let listed = tx.list::<invoices::Entity>(all(), vec![], page()).await?;
    let mut listed_ids: Vec<Uuid> = listed.iter().map(|i| i.id).collect();
    let mut expected = a_invoices.clone();
    listed_ids.sort();
    expected.sort();
    assert_eq!(listed_ids, expected);
    assert!(listed.iter().all(|i| i.tenant_id == a));
    assert_eq!(tx.count::<invoices::Entity>(all()).await?, 2);
    assert_eq!(
        tx.count::<invoices::Entity>(invoices::Column::AmountCents.gt(200))
            .await?,
        1
    );
    let err = tx
        .get::<invoices::Entity>("invoice", b_invoices[0])
        .await
        .expect_err("B's invoice must not be found from A");
    assert!(matches!(err, ServiceError::NotFound("invoice")), "{err:?}");
    let err = tx
        .update(invoices::ActiveModel {
            id: Set(b_invoices[0]),
            amount_cents: Set(1),
            ..Default::default()
        })
        .await
        .expect_err("B's invoice must not be updated from A");
    assert!(matches!(err, ServiceError::NotFound(_)), "{err:?}");
    assert!(!tx.delete_by_id::<invoices::Entity>(b_invoices[0]).await?);
    let n = tx
        .update_many::<invoices::Entity>()?
        .col_expr(invoices::Column::AmountCents, Expr::value(0i64))
        .exec(tx.conn())
        .await?
        .rows_affected;
    assert_eq!(n, 2);
    assert!(tx.delete_by_id::<invoices::Entity>(a_invoices[0]).await?);
    tx.commit().await?;

    // An invoice of A's pointing at B's project: refused by the composite foreign key.
    let tx = tenantry.begin(&a_ctx).await?;
    let err = tx
        .insert(invoices::ActiveModel {
            project_id: Set(*b_project),
            amount_cents: Set(5),
            ..Default::default()
        })
        .await
        .expect_err("a reference to another tenant's project must be refused");
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    drop(tx);
    // And one naming B as its tenant: refused before it is sent.
    let tx = tenantry.begin(&a_ctx).await?;
    let err = tx
        .insert(invoices::ActiveModel {
            tenant_id: Set(b),
            project_id: Set(*a_project),
            amount_cents: Set(5),
            ..Default::default()
        })
        .await
        .expect_err("an invoice naming another tenant must be refused");
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    drop(tx);

    // As the superuser: B's invoice untouched, A has one invoice left, at 0.
    assert_eq!(
        scalar_i64(
            &su,
            "SELECT amount_cents FROM public.invoices WHERE tenant_id = $1 AND id = $2",
            [b.into(), b_invoices[0].into()]
        )
        .await?,
        999
    );
    assert_eq!(
        scalar_i64(
            &su,
            "SELECT count(*) FROM public.invoices WHERE tenant_id = $1 AND amount_cents = 0",
            [a.into()]
        )
        .await?,
        1
    );
    assert_eq!(
        scalar_i64(&su, "SELECT count(*) FROM public.invoices", []).await?,
        2
    );

    // The catalog audit passes, with the new table among the checked ones.
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let report = migration::audit::audit_default(&owner).await?;
    assert!(report.passed(), "{report}");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.check == "force_rls" && f.subject == "public.invoices" && f.ok),
        "{report}"
    );
    let tables = migration::audit::tenant_tables(&owner).await?;
    assert!(tables.contains(&("public".to_owned(), "invoices".to_owned())));
    owner.close().await?;
    tenantry.close().await?;

    // And the migration goes down cleanly (the tenancy steps first, then the table).
    let owner = migration::run::connect(&db.url(LoginRole::Owner)).await?;
    AppMigrator::down(&owner, Some(1)).await?;
    assert_eq!(
        scalar_i64(
            &owner,
            "SELECT count(*) FROM pg_catalog.pg_class WHERE oid = to_regclass('public.invoices')",
            []
        )
        .await?,
        0
    );
    let report = migration::audit::audit_default(&owner).await?;
    assert!(report.passed(), "{report}");
    owner.close().await?;
    su.close().await?;
    Ok(())
}

#[tokio::test]
async fn the_isolation_matrix_attacks_the_new_table_and_it_holds() -> Result<()> {
    let db = extended_db().await?;
    let target = IsolationTarget::for_db(&db, 50);
    let report = isolation::run(&target).await?;
    assert!(report.passed(), "{report}");
    let row = report
        .matrix
        .iter()
        .find(|r| r.subject == "public.invoices")
        .ok_or_else(|| anyhow::anyhow!("public.invoices is not in the matrix:\n{report}"))?;
    assert_eq!(row.cells.len(), isolation::attacks::ATTACKS.len());
    assert!(
        row.cells.iter().any(|(_, c)| matches!(c, Cell::Pass(_))),
        "no attack applied to public.invoices:\n{report}"
    );
    assert!(
        !report
            .seed_failures
            .iter()
            .any(|(t, _)| t.contains("invoices"))
    );
    Ok(())
}
