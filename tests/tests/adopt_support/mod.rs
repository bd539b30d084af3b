//! Fixtures for the adoption tests, built from the table lists of seed 001 (a sales-data app:
//! users, uploads, sellout_entries2, products, processing_logs, transform_logs, email_logs;
//! integer and identity keys, a composite key, a partitioned table, a partial expression unique
//! index, a view, a global lookup table) and seed 003 (an agents platform: projects,
//! knowledge_base, bolt_workflows, orchestrator_state, bmad_workflows under organizations;
//! uuid keys, a tenant root, a table with two paths to the root, a view).
#![allow(dead_code)]

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, DbErr};
use tenantry_tests::TestDb;
use tenantry_tests::isolation::{ContextMode, IsolationTarget};
use tenantry_tests::logins::{APP_LOGIN, LoginRole};

/// Seed 001's schema, as its single-tenant application created it.
pub const SEED001: &str = "
CREATE SCHEMA seed001;
CREATE TABLE seed001.countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE seed001.users (
    id serial PRIMARY KEY, email text NOT NULL UNIQUE, full_name text,
    country text REFERENCES seed001.countries (code), created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE seed001.uploads (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id integer NOT NULL REFERENCES seed001.users (id),
    filename text NOT NULL, status text NOT NULL DEFAULT 'new', created_at timestamptz NOT NULL DEFAULT now());
CREATE UNIQUE INDEX uploads_live_filename ON seed001.uploads (lower(filename)) WHERE status <> 'deleted';
CREATE TABLE seed001.products (id serial PRIMARY KEY, ean text NOT NULL, name text NOT NULL,
    CONSTRAINT products_ean_key UNIQUE (ean));
CREATE TABLE seed001.sellout_entries2 (
    id bigserial, year integer NOT NULL, month integer NOT NULL,
    product_id integer NOT NULL REFERENCES seed001.products (id), upload_id bigint REFERENCES seed001.uploads (id),
    quantity numeric NOT NULL, PRIMARY KEY (id, year)) PARTITION BY RANGE (year);
CREATE TABLE seed001.sellout_entries2_rest PARTITION OF seed001.sellout_entries2 DEFAULT;
CREATE TABLE seed001.processing_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), upload_id bigint REFERENCES seed001.uploads (id) ON DELETE CASCADE,
    message text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE seed001.transform_logs (
    upload_id bigint NOT NULL REFERENCES seed001.uploads (id), step integer NOT NULL, detail jsonb,
    PRIMARY KEY (upload_id, step));
CREATE TABLE seed001.email_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id integer REFERENCES seed001.users (id),
    subject text NOT NULL, sent_at timestamptz);
CREATE VIEW seed001.upload_summary AS
    SELECT u.id, u.filename, us.email FROM seed001.uploads u JOIN seed001.users us ON us.id = u.user_id;
";

/// Seed 001's rows: NULLs, JSON, non-ASCII text, a soft-deleted duplicate file name.
pub const SEED001_DATA: &str = "
INSERT INTO seed001.countries VALUES ('FR', 'France'), ('DZ', 'Algérie');
INSERT INTO seed001.users (email, full_name, country, created_at) VALUES
  ('ada@example.com', 'Ada', 'FR', '2020-01-01 00:00:00+00'), ('zoë@example.com', NULL, 'DZ', '2020-01-02 00:00:00+00'),
  ('nobody@example.com', '', NULL, '2020-01-03 00:00:00+00');
INSERT INTO seed001.uploads (user_id, filename, status, created_at) VALUES
  (1, 'Jan.csv', 'done', '2021-01-01 00:00:00+00'), (1, 'jan.csv', 'deleted', '2021-01-02 00:00:00+00'),
  (2, 'feb.xlsx', 'new', '2021-02-01 00:00:00+00');
INSERT INTO seed001.products (ean, name) VALUES ('3017620422003', 'Pâte à tartiner'), ('5449000000996', 'Cola');
INSERT INTO seed001.sellout_entries2 (year, month, product_id, upload_id, quantity) VALUES
  (2021, 1, 1, 1, 12.5), (2021, 2, 2, 3, 7), (2022, 3, 1, NULL, 0);
INSERT INTO seed001.processing_logs (upload_id, message, created_at) VALUES
  (1, 'parsed 2 rows', '2021-01-01 00:01:00+00'), (3, NULL, '2021-02-01 00:01:00+00');
INSERT INTO seed001.transform_logs VALUES (1, 1, '{\"op\": \"trim\"}'), (1, 2, NULL), (3, 1, '{\"op\": [1, 2]}');
INSERT INTO seed001.email_logs (user_id, subject, sent_at) VALUES (1, 'Report', '2021-03-01 00:00:00+00'), (NULL, 'Broadcast', NULL);
";

/// Seed 001's tables that hold data, with an ordering key for the checksum.
pub const SEED001_TABLES: [(&str, &str); 9] = [
    ("seed001.countries", "code"),
    ("seed001.users", "id"),
    ("seed001.uploads", "id"),
    ("seed001.products", "id"),
    ("seed001.sellout_entries2", "id"),
    ("seed001.sellout_entries2_rest", "id"),
    ("seed001.processing_logs", "id"),
    ("seed001.transform_logs", "upload_id, step"),
    ("seed001.email_logs", "id"),
];

/// Seed 003's schema: organizations are the tenant root.
pub const SEED003: &str = "
CREATE SCHEMA seed003;
CREATE TABLE seed003.organizations (id uuid PRIMARY KEY, name text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE seed003.projects (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), organization_id uuid NOT NULL REFERENCES seed003.organizations (id),
    name text NOT NULL, UNIQUE (organization_id, name));
CREATE TABLE seed003.knowledge_base (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, project_id uuid NOT NULL REFERENCES seed003.projects (id),
    slug text NOT NULL UNIQUE, body text);
CREATE TABLE seed003.bolt_workflows (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(), project_id uuid NOT NULL REFERENCES seed003.projects (id),
    organization_id uuid NOT NULL REFERENCES seed003.organizations (id), state text NOT NULL DEFAULT 'draft');
CREATE TABLE seed003.orchestrator_state (
    workflow_id uuid PRIMARY KEY REFERENCES seed003.bolt_workflows (id), step integer NOT NULL, payload jsonb);
CREATE TABLE seed003.bmad_workflows (id serial PRIMARY KEY, project_id uuid REFERENCES seed003.projects (id), title text NOT NULL);
CREATE VIEW seed003.project_overview AS
    SELECT p.id, p.name, o.name AS organization FROM seed003.projects p JOIN seed003.organizations o ON o.id = p.organization_id;
";

/// Seed 003's rows: two organizations, every path agreeing.
pub const SEED003_DATA: &str = "
INSERT INTO seed003.organizations (id, name) VALUES
  ('a0000000-0000-0000-0000-000000000001', 'Acme Corp'), ('a0000000-0000-0000-0000-000000000002', 'Globex, Inc.');
INSERT INTO seed003.projects (id, organization_id, name) VALUES
  ('b0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001', 'Rockets'),
  ('b0000000-0000-0000-0000-000000000002', 'a0000000-0000-0000-0000-000000000002', 'Rockets'),
  ('b0000000-0000-0000-0000-000000000003', 'a0000000-0000-0000-0000-000000000002', 'Magnets');
INSERT INTO seed003.knowledge_base (project_id, slug, body) VALUES
  ('b0000000-0000-0000-0000-000000000001', 'intro', 'Hello'), ('b0000000-0000-0000-0000-000000000003', 'faq', NULL);
INSERT INTO seed003.bolt_workflows (id, project_id, organization_id) VALUES
  ('c0000000-0000-0000-0000-000000000001', 'b0000000-0000-0000-0000-000000000001', 'a0000000-0000-0000-0000-000000000001'),
  ('c0000000-0000-0000-0000-000000000002', 'b0000000-0000-0000-0000-000000000003', 'a0000000-0000-0000-0000-000000000002');
INSERT INTO seed003.orchestrator_state VALUES ('c0000000-0000-0000-0000-000000000002', 3, '{\"next\": \"review\"}');
INSERT INTO seed003.bmad_workflows (project_id, title) VALUES ('b0000000-0000-0000-0000-000000000002', 'Plan');
";

/// Seed 003's tables with an ordering key.
pub const SEED003_TABLES: [(&str, &str); 6] = [
    ("seed003.organizations", "id"),
    ("seed003.projects", "id"),
    ("seed003.knowledge_base", "id"),
    ("seed003.bolt_workflows", "id"),
    ("seed003.orchestrator_state", "workflow_id"),
    ("seed003.bmad_workflows", "id"),
];

/// Each table's rows (every column but `tenant_id`) as one md5 checksum, read as the superuser
/// (who bypasses row level security), plus the row count.
pub async fn checksums<C: ConnectionTrait>(
    su: &C,
    tables: &[(&str, &str)],
) -> Result<BTreeMap<String, (i64, String)>, DbErr> {
    let mut out = BTreeMap::new();
    for (table, order) in tables {
        let row = su
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT count(*), md5(coalesce(string_agg((to_jsonb(t) - 'tenant_id')::text, E'\\n' ORDER BY {order}), '')) \
                     FROM {table} t"
                ),
            ))
            .await?
            .ok_or_else(|| DbErr::Custom(format!("no checksum for {table}")))?;
        out.insert(
            (*table).to_owned(),
            (row.try_get_by_index(0)?, row.try_get_by_index(1)?),
        );
    }
    Ok(out)
}

/// A fresh migrated database with `schema_sql` and `data_sql` applied as the owner (the user's
/// tables belong to the login that runs migrations).
pub async fn fixture(schema_sql: &str, data_sql: &str) -> anyhow::Result<TestDb> {
    let db = crate::common::migrated_db().await?;
    let owner = db.connect(LoginRole::Owner, 1).await?;
    owner.execute_unprepared(schema_sql).await?;
    owner.execute_unprepared(data_sql).await?;
    owner.close().await?;
    Ok(db)
}

/// The attack matrix's target for `db` (unchanged attack code).
pub fn target(db: &TestDb) -> IsolationTarget {
    IsolationTarget {
        superuser_url: db.superuser_url(),
        owner_url: db.url(LoginRole::Owner),
        app_url: db.url(LoginRole::App),
        app_login: APP_LOGIN.into(),
        app_role: migration::names::APP_ROLE.into(),
        mode: ContextMode::Local,
        pool_iterations: 20,
        bouncer_url: None,
        legacy_url: Some(db.url(LoginRole::Legacy)),
    }
}

/// A count as the superuser.
pub async fn count<C: ConnectionTrait>(su: &C, sql: &str) -> Result<i64, DbErr> {
    crate::common::scalar_i64(su, sql).await
}

/// How many `tenant_id` columns exist in `schema` (0 = nothing was changed).
pub async fn tenant_columns<C: ConnectionTrait>(su: &C, schema: &str) -> Result<i64, DbErr> {
    count(
        su,
        &format!(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{schema}' AND column_name = 'tenant_id'"
        ),
    )
    .await
}
