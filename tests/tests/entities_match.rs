//! The `entity` crate against a migrated database: every entity's columns (names,
//! nullability, SQL types), primary key and foreign keys match the catalog, the tenant-scoped
//! entities are exactly the tables with a `tenant_id` column, and rows written through the
//! entities read back unchanged.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, ensure};
use entity::prelude::*;
use entity::{
    api_keys, audit_logs, documents, member_roles, projects, role_permissions, roles,
    superadmin_audit_logs, tasks, tenant_users, tenants, usage_events, users,
};
use migration::audit;
use sea_orm::prelude::{DateTimeWithTimeZone, Json, Uuid};
use sea_orm::sea_query::{
    ColumnType, ForeignKeyAction, SchemaName, StringLen, TableName, TableRef,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    IdenStatic, Iterable, ModelTrait, PrimaryKeyToColumn, QueryFilter, RelationTrait, Set,
    Statement,
};
use tenantry_tests::logins::LoginRole;

/// What an entity says about its table.
#[derive(Debug)]
struct EntityShape {
    schema: String,
    table: String,
    /// Column name -> (type, nullable).
    columns: BTreeMap<String, (ColumnType, bool)>,
    primary_key: Vec<String>,
    /// The `belongs_to` relations: the foreign keys the entity claims its table has.
    foreign_keys: BTreeSet<ForeignKey>,
}

/// A foreign key, from the entity or from `pg_constraint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    to_schema: String,
    to_table: String,
    to_columns: Vec<String>,
    /// `pg_constraint.confdeltype`: `a` no action, `r` restrict, `c` cascade, `n` set null,
    /// `d` set default.
    on_delete: String,
}

fn schema_and_table(table: &TableRef) -> (String, String) {
    match table {
        TableRef::Table(TableName(schema, name), _) => (
            schema
                .as_ref()
                .map(|SchemaName(_, s)| s.to_string())
                .unwrap_or_else(|| "public".to_owned()),
            name.to_string(),
        ),
        other => panic!("relation to something other than a table: {other:?}"),
    }
}

fn delete_code(action: Option<ForeignKeyAction>) -> String {
    let code = match action {
        None | Some(ForeignKeyAction::NoAction) => "a",
        Some(ForeignKeyAction::Restrict) => "r",
        Some(ForeignKeyAction::Cascade) => "c",
        Some(ForeignKeyAction::SetNull) => "n",
        Some(ForeignKeyAction::SetDefault) => "d",
        Some(other) => return format!("{other:?}"),
    };
    code.to_owned()
}

fn shape<E: EntityTrait>() -> EntityShape {
    let entity = E::default();
    let columns = E::Column::iter()
        .map(|c| {
            let def = c.def();
            (
                c.as_str().to_owned(),
                (def.get_column_type().clone(), def.is_null()),
            )
        })
        .collect();
    let primary_key = E::PrimaryKey::iter()
        .map(|k| k.into_column().as_str().to_owned())
        .collect();
    let foreign_keys = E::Relation::iter()
        .map(|r| r.def())
        // `is_owner` is false on `belongs_to` (the side holding the foreign key) and true on
        // `has_one`/`has_many`, despite its field doc.
        .filter(|r| !r.is_owner)
        .map(|r| {
            let (to_schema, to_table) = schema_and_table(&r.to_tbl);
            ForeignKey {
                columns: r.from_col.iter().map(|c| c.to_string()).collect(),
                to_schema,
                to_table,
                to_columns: r.to_col.iter().map(|c| c.to_string()).collect(),
                on_delete: delete_code(r.on_delete),
            }
        })
        .collect();
    EntityShape {
        schema: entity.schema_name().unwrap_or("public").to_owned(),
        table: entity.table_name().to_owned(),
        columns,
        primary_key,
        foreign_keys,
    }
}

/// Every entity of the crate.
fn all_entities() -> Vec<EntityShape> {
    vec![
        shape::<users::Entity>(),
        shape::<projects::Entity>(),
        shape::<documents::Entity>(),
        shape::<tasks::Entity>(),
        shape::<tenants::Entity>(),
        shape::<tenant_users::Entity>(),
        shape::<api_keys::Entity>(),
        shape::<usage_events::Entity>(),
        shape::<audit_logs::Entity>(),
        shape::<superadmin_audit_logs::Entity>(),
        shape::<roles::Entity>(),
        shape::<role_permissions::Entity>(),
        shape::<member_roles::Entity>(),
    ]
}

/// Whether a column of PostgreSQL type `udt_name` may be described by `ty`.
fn type_matches(udt_name: &str, ty: &ColumnType) -> bool {
    match udt_name {
        "uuid" => matches!(ty, ColumnType::Uuid),
        "text" => matches!(ty, ColumnType::Text),
        "citext" => matches!(ty, ColumnType::Custom(name) if name.to_string() == "citext"),
        "jsonb" => matches!(ty, ColumnType::JsonBinary),
        "timestamptz" => matches!(ty, ColumnType::TimestampWithTimeZone),
        "int4" => matches!(ty, ColumnType::Integer),
        "int8" => matches!(ty, ColumnType::BigInteger),
        "float8" => matches!(ty, ColumnType::Double),
        // sea-query's PostgreSQL backend renders both as `bytea`.
        "bytea" => matches!(
            ty,
            ColumnType::VarBinary(StringLen::None) | ColumnType::Blob
        ),
        "_text" => {
            matches!(ty, ColumnType::Array(inner) if matches!(inner.as_ref(), ColumnType::Text))
        }
        _ => false,
    }
}

async fn query(
    db: &DatabaseConnection,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
}

/// `column -> (udt_name, nullable)` of a table, from `information_schema.columns`.
async fn catalog_columns(
    db: &DatabaseConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<BTreeMap<String, (String, bool)>> {
    let rows = query(
        db,
        "SELECT column_name::text, udt_name::text, is_nullable = 'YES' \
         FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2",
        vec![schema.into(), table.into()],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<String>(0)?,
                (
                    r.try_get_by_index::<String>(1)?,
                    r.try_get_by_index::<bool>(2)?,
                ),
            ))
        })
        .collect()
}

/// The primary key's columns in key order, from `pg_index`.
async fn catalog_primary_key(
    db: &DatabaseConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<Vec<String>> {
    let rows = query(
        db,
        "SELECT a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = format('%I.%I', $1::text, $2::text)::regclass AND i.indisprimary \
         ORDER BY k.ord",
        vec![schema.into(), table.into()],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?)
}

/// The table's foreign keys, from `pg_constraint`.
async fn catalog_foreign_keys(
    db: &DatabaseConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<BTreeSet<ForeignKey>> {
    let rows = query(
        db,
        "SELECT \
           ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(n, o) \
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o), \
           tn.nspname::text, tc.relname::text, \
           ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(n, o) \
                 JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o), \
           k.confdeltype::text \
         FROM pg_constraint k JOIN pg_class tc ON tc.oid = k.confrelid \
         JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
         WHERE k.contype = 'f' AND k.conrelid = format('%I.%I', $1::text, $2::text)::regclass",
        vec![schema.into(), table.into()],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ForeignKey {
                columns: r.try_get_by_index(0)?,
                to_schema: r.try_get_by_index(1)?,
                to_table: r.try_get_by_index(2)?,
                to_columns: r.try_get_by_index(3)?,
                on_delete: r.try_get_by_index(4)?,
            })
        })
        .collect()
}

#[tokio::test]
async fn entities_match_the_migrated_catalog() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    let mut problems = Vec::new();

    let entities = all_entities();
    for entity in &entities {
        let name = format!("{}.{}", entity.schema, entity.table);
        let catalog = catalog_columns(&owner, &entity.schema, &entity.table).await?;
        if catalog.is_empty() {
            problems.push(format!("{name}: no such table"));
            continue;
        }
        let ours: BTreeSet<&String> = entity.columns.keys().collect();
        let theirs: BTreeSet<&String> = catalog.keys().collect();
        for missing in theirs.difference(&ours) {
            problems.push(format!(
                "{name}.{missing}: in the database, not in the entity"
            ));
        }
        for extra in ours.difference(&theirs) {
            problems.push(format!(
                "{name}.{extra}: in the entity, not in the database"
            ));
        }
        for (column, (ty, nullable)) in &entity.columns {
            let Some((udt, db_nullable)) = catalog.get(column) else {
                continue;
            };
            if nullable != db_nullable {
                problems.push(format!(
                    "{name}.{column}: entity nullable = {nullable} (Option<_> or not), \
                     database nullable = {db_nullable}"
                ));
            }
            if !type_matches(udt, ty) {
                problems.push(format!(
                    "{name}.{column}: database type {udt}, entity column type {ty:?}"
                ));
            }
        }

        let pk = catalog_primary_key(&owner, &entity.schema, &entity.table).await?;
        if pk != entity.primary_key {
            problems.push(format!(
                "{name}: primary key in the database {pk:?}, in the entity {:?}",
                entity.primary_key
            ));
        }

        let fks = catalog_foreign_keys(&owner, &entity.schema, &entity.table).await?;
        for fk in fks.difference(&entity.foreign_keys) {
            problems.push(format!(
                "{name}: database foreign key without a matching belongs_to relation: {fk:?}"
            ));
        }
        for fk in entity.foreign_keys.difference(&fks) {
            problems.push(format!(
                "{name}: belongs_to relation without a matching foreign key: {fk:?}"
            ));
        }
    }

    // Every application table has an entity.
    let rows = query(
        &owner,
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema IN ('public', 'tenancy') AND table_type = 'BASE TABLE' \
           AND table_name <> 'seaql_migrations' \
           AND table_name NOT IN ('tenant_schema_steps', 'tenant_schema_versions', 'tenant_moves')",
        vec![],
    )
    .await?;
    let with_entity: BTreeSet<(String, String)> = entities
        .iter()
        .map(|e| (e.schema.clone(), e.table.clone()))
        .collect();
    for row in rows {
        let table = (
            row.try_get_by_index::<String>(0)?,
            row.try_get_by_index::<String>(1)?,
        );
        if !with_entity.contains(&table) {
            problems.push(format!("{}.{}: table without an entity", table.0, table.1));
        }
    }

    ensure!(
        problems.is_empty(),
        "entities differ from the migrated schema:\n  {}",
        problems.join("\n  ")
    );
    Ok(())
}

fn tenant_column_of<E: TenantScoped>() -> String {
    E::tenant_column().as_str().to_owned()
}

#[tokio::test]
async fn tenant_scoped_entities_are_the_tables_with_tenant_id() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;

    let listed = entity::tenant_scoped_tables();
    let ours: BTreeSet<(String, String)> = listed
        .iter()
        .map(|(s, t)| ((*s).to_owned(), (*t).to_owned()))
        .collect();
    ensure!(ours.len() == listed.len(), "duplicates in {listed:?}");
    let theirs: BTreeSet<(String, String)> =
        audit::tenant_tables(&owner).await?.into_iter().collect();
    ensure!(
        ours == theirs,
        "tenant_scoped_tables() {ours:?} differs from the tables with a tenant_id column \
         {theirs:?}"
    );

    for column in [
        tenant_column_of::<Projects>(),
        tenant_column_of::<Documents>(),
        tenant_column_of::<Tasks>(),
        tenant_column_of::<TenantUsers>(),
        tenant_column_of::<ApiKeys>(),
        tenant_column_of::<UsageEvents>(),
        tenant_column_of::<AuditLogs>(),
    ] {
        ensure!(column == "tenant_id", "tenant column {column}");
    }
    Ok(())
}

fn at(rfc3339: &str) -> DateTimeWithTimeZone {
    DateTimeWithTimeZone::parse_from_rfc3339(rfc3339).expect("a valid timestamp")
}

fn json(text: &str) -> Json {
    text.parse().expect("valid JSON")
}

/// Rows written through the entities come back equal: every Rust type decodes from its
/// column. As the superuser, which bypasses row level security.
#[tokio::test]
async fn rows_round_trip_through_the_entities() -> anyhow::Result<()> {
    let db = tenantry_tests::migrated_db().await?;
    let su = db.connect_superuser().await?;

    let tenant = tenants::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set("Acme".into()),
        slug: Set("acme".into()),
        region: Set("us".into()),
        plan: Set("pro".into()),
        status: Set("trial".into()),
        admin_email: Set(Some("Admin@Acme.test".into())),
        settings: Set(json(r#"{"theme": "dark", "seats": 5}"#)),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert tenant")?;
    ensure!(
        tenant.settings["seats"] == 5 && tenant.admin_email.as_deref() == Some("Admin@Acme.test")
    );
    ensure!(Tenants::find_by_id(tenant.id).one(&su).await? == Some(tenant.clone()));

    let user = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set("Ann@Example.COM".into()),
        full_name: Set("Ann".into()),
        password_hash: Set(None),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert user")?;
    ensure!(Users::find_by_id(user.id).one(&su).await? == Some(user.clone()));
    // `email` is citext and compared as citext: case does not matter.
    let by_email = Users::find()
        .filter(users::Column::Email.eq("ann@example.com"))
        .one(&su)
        .await?;
    ensure!(
        by_email == Some(user.clone()),
        "citext lookup: {by_email:?}"
    );

    let member = tenant_users::ActiveModel {
        tenant_id: Set(tenant.id),
        user_id: Set(user.id),
        role: Set("admin".into()),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert tenant_user")?;
    ensure!(
        TenantUsers::find_by_id((tenant.id, user.id))
            .one(&su)
            .await?
            == Some(member)
    );
    ensure!(user.find_related(Tenants).all(&su).await? == vec![tenant.clone()]);

    let project = projects::ActiveModel {
        tenant_id: Set(tenant.id),
        id: Set(Uuid::new_v4()),
        owner_id: Set(Some(user.id)),
        name: Set("Apollo".into()),
        description: Set("to the moon".into()),
        status: Set("active".into()),
        metadata: Set(json(
            r#"{"budget": 1.5, "tags": ["a", "b"], "nested": {"x": null}}"#,
        )),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert project")?;
    ensure!(
        Projects::find_by_id((tenant.id, project.id))
            .one(&su)
            .await?
            == Some(project.clone())
    );

    // No id: the database's default fills it and RETURNING hands it back.
    let document = documents::ActiveModel {
        tenant_id: Set(tenant.id),
        project_id: Set(project.id),
        title: Set("Plan".into()),
        body: Set("Step 1: ...".into()),
        tags: Set(vec!["draft".into(), "with space".into(), "ünïcode".into()]),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert document")?;
    ensure!(document.tags == ["draft", "with space", "ünïcode"]);
    ensure!(
        Documents::find_by_id((tenant.id, document.id))
            .one(&su)
            .await?
            == Some(document.clone())
    );
    // The composite relations join both ways.
    ensure!(project.find_related(Documents).all(&su).await? == vec![document.clone()]);
    ensure!(document.find_related(Projects).one(&su).await? == Some(project.clone()));
    ensure!(tenant.find_related(Documents).all(&su).await? == vec![document.clone()]);

    let due = at("2030-01-02T03:04:05.123456+02:00");
    let task = tasks::ActiveModel {
        tenant_id: Set(tenant.id),
        id: Set(Uuid::new_v4()),
        project_id: Set(project.id),
        title: Set("Launch".into()),
        status: Set("todo".into()),
        assignee_id: Set(Some(user.id)),
        due_at: Set(Some(due)),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert task")?;
    ensure!(task.due_at == Some(due), "due_at {:?}", task.due_at);
    ensure!(Tasks::find_by_id((tenant.id, task.id)).one(&su).await? == Some(task.clone()));
    ensure!(task.find_related(Users).one(&su).await? == Some(user.clone()));

    let key = api_keys::ActiveModel {
        tenant_id: Set(tenant.id),
        id: Set(Uuid::new_v4()),
        name: Set("ci".into()),
        prefix: Set("tk_abcdefgh".into()),
        secret_hash: Set((0u8..32).collect()),
        scopes: Set(vec!["read".into(), "write".into()]),
        rate_limit_per_minute: Set(Some(600)),
        monthly_quota: Set(Some(10_000_000_000)),
        expires_at: Set(Some(at("2031-06-30T23:59:59Z"))),
        revoked_at: Set(None),
        last_used_at: Set(None),
        created_by: Set(Some(user.id)),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert api key")?;
    ensure!(key.secret_hash == (0u8..32).collect::<Vec<_>>());
    ensure!(ApiKeys::find_by_id((tenant.id, key.id)).one(&su).await? == Some(key.clone()));

    let event = usage_events::ActiveModel {
        tenant_id: Set(tenant.id),
        id: Set(Uuid::new_v4()),
        api_key_id: Set(Some(key.id)),
        kind: Set("transcription".into()),
        quantity: Set(3),
        tokens_in: Set(5_000_000_000),
        tokens_out: Set(7),
        audio_seconds: Set(12.625),
        ocr_pages: Set(2),
        latency_ms: Set(Some(87)),
        endpoint: Set(Some("/v1/audio".into())),
        metadata: Set(json(r#"{"model": "small"}"#)),
        occurred_at: Set(at("2029-12-31T23:00:00.5-05:00")),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert usage event")?;
    ensure!(event.audio_seconds == 12.625 && event.tokens_in == 5_000_000_000);
    ensure!(
        UsageEvents::find_by_id((tenant.id, event.id))
            .one(&su)
            .await?
            == Some(event.clone())
    );
    ensure!(event.find_related(ApiKeys).one(&su).await? == Some(key.clone()));

    let log = audit_logs::ActiveModel {
        tenant_id: Set(tenant.id),
        id: Set(Uuid::new_v4()),
        actor_user_id: Set(Some(user.id)),
        actor_api_key_id: Set(None),
        action: Set("project.create".into()),
        resource_type: Set(Some("project".into())),
        resource_id: Set(Some(project.id.to_string())),
        details: Set(json("{}")),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert audit log")?;
    ensure!(AuditLogs::find_by_id((tenant.id, log.id)).one(&su).await? == Some(log));

    let sa_log = superadmin_audit_logs::ActiveModel {
        id: Set(Uuid::new_v4()),
        actor: Set("ops@tenantry".into()),
        reason: Set("ticket 42".into()),
        scope_tenant_id: Set(Some(tenant.id)),
        action: Set("read".into()),
        details: Set(json(r#"{"rows": 1}"#)),
        ..Default::default()
    }
    .insert(&su)
    .await
    .context("insert superadmin audit log")?;
    ensure!(SuperadminAuditLogs::find_by_id(sa_log.id).one(&su).await? == Some(sa_log));

    su.close().await?;
    Ok(())
}
