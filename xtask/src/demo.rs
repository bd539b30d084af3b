//! `cargo xtask demo`: the README's first command.
//!
//! Starts the local dev cluster and migrates it ([`crate::db::demo`]), seeds the sample data of
//! seed 002 through the service (the audited superadmin path for tenants and users, tenant
//! transactions for everything inside a tenant), issues one API key per tenant, prints working
//! `curl` lines, and serves the API until Ctrl-C.
//!
//! Seeding is idempotent: tenants are found by slug, users by e-mail, projects by name,
//! documents and tasks by title, so a second run reuses the data. The API key named `demo` is
//! rotated on every run (its secret cannot be shown again, so a rerun needs a new one), and the
//! old one stops working.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use api::{ApiConfig, AppState};
use entity::{documents, projects, tasks, users};
use sea_orm::{ActiveValue, ColumnTrait, EntityTrait, QueryFilter};
use service::api_keys::{self, NewApiKey};
use service::tenants::{Isolation, NewTenant, TenantStatus};
use service::{
    MemberRole, SuperadminGrant, TenantContext, TenantTx, Tenantry, TenantryConfig, members,
};
use tenantry_tests::logins::LoginRole;
use uuid::Uuid;

/// Every demo user's password.
pub const DEMO_PASSWORD: &str = "demo-password";

/// The name of the API key the demo issues per tenant.
const DEMO_KEY: &str = "demo";

struct UserSpec {
    email: &'static str,
    name: &'static str,
}

struct ProjectSpec {
    name: &'static str,
    description: &'static str,
    documents: &'static [(&'static str, &'static str)],
    tasks: &'static [(&'static str, &'static str)],
}

struct TenantSpec {
    name: &'static str,
    slug: &'static str,
    plan: &'static str,
    /// Seed 002 calls them the organisation's admin; provisioning makes them its owner.
    owner: UserSpec,
    members: &'static [(&'static str, &'static str, MemberRole)],
    projects: &'static [ProjectSpec],
    /// Healthcare Co asks for its own schema (a dedicated tenant); the others share tables.
    isolation: Isolation,
}

/// Seed 002's organisations and people, with a little work in each.
const TENANTS: &[TenantSpec] = &[
    TenantSpec {
        name: "Acme Corporation",
        slug: "acme",
        plan: "enterprise",
        owner: UserSpec {
            email: "alice@acme.com",
            name: "Alice",
        },
        members: &[("bob@acme.com", "Bob", MemberRole::Member)],
        projects: &[
            ProjectSpec {
                name: "Website Redesign",
                description: "New marketing site for the autumn launch",
                documents: &[
                    ("Brand guidelines", "Colours, type and tone."),
                    ("Sitemap", "Home, Pricing, Docs, Blog."),
                ],
                tasks: &[
                    ("Wireframes", "done"),
                    ("Copy review", "in_progress"),
                    ("Launch", "todo"),
                ],
            },
            ProjectSpec {
                name: "Q3 Analytics",
                description: "Quarterly usage report",
                documents: &[("Metrics definitions", "Active users, retention, churn.")],
                tasks: &[("Export usage", "todo"), ("Draft report", "todo")],
            },
        ],
        isolation: Isolation::Shared,
    },
    TenantSpec {
        name: "Tech Startup Inc",
        slug: "tech-startup",
        plan: "pro",
        owner: UserSpec {
            email: "charlie@techstartup.io",
            name: "Charlie",
        },
        members: &[],
        projects: &[
            ProjectSpec {
                name: "MVP Backend",
                description: "The first paying customer's API",
                documents: &[
                    ("Architecture", "One service, one database."),
                    ("API sketch", "REST, JSON, API keys."),
                ],
                tasks: &[
                    ("Auth", "done"),
                    ("Billing", "in_progress"),
                    ("Deploy", "todo"),
                ],
            },
            ProjectSpec {
                name: "Fundraising Deck",
                description: "Seed round",
                documents: &[("Deck outline", "Problem, solution, traction, team.")],
                tasks: &[("Collect metrics", "todo")],
            },
        ],
        isolation: Isolation::Shared,
    },
    TenantSpec {
        name: "Healthcare Co",
        slug: "healthcare-co",
        plan: "free",
        owner: UserSpec {
            email: "diana@healthcare.com",
            name: "Diana",
        },
        members: &[],
        projects: &[ProjectSpec {
            name: "Patient Portal",
            description: "Appointments and results online",
            documents: &[
                ("Requirements", "Sign-in, appointments, lab results."),
                ("Privacy notes", "Minimise what we store."),
            ],
            tasks: &[
                ("Threat model", "in_progress"),
                ("Accessibility review", "todo"),
                ("Pilot clinic", "todo"),
            ],
        }],
        isolation: Isolation::Dedicated,
    },
];

/// A seeded tenant and its fresh API key.
#[derive(Debug, Clone)]
pub struct SeededTenant {
    /// The tenant's id.
    pub id: Uuid,
    /// Its display name.
    pub name: String,
    /// Its slug.
    pub slug: String,
    /// Its owner's address.
    pub owner_email: String,
    /// The other members' addresses.
    pub member_emails: Vec<String>,
    /// The `demo` key's secret (shown once).
    pub key_secret: String,
    /// The id of the tenant's first sample project.
    pub first_project: Option<Uuid>,
    /// `shared`, or `dedicated (schema t_...)`.
    pub isolation: String,
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// The user with `email`, created with `hash` when absent.
async fn ensure_user(tenantry: &Tenantry, spec: &UserSpec, hash: &str) -> Result<Uuid> {
    let sa = tenantry
        .superadmin(SuperadminGrant {
            actor: "xtask-demo",
            reason: "seed the demo data",
            action: "demo.seed_user",
            scope: None,
        })
        .await?;
    let existing = users::Entity::find()
        .filter(users::Column::Email.eq(spec.email))
        .one(sa.conn())
        .await?;
    let id = match existing {
        Some(user) => user.id,
        None => sa.create_user(spec.email, spec.name, Some(hash)).await?,
    };
    sa.commit().await?;
    Ok(id)
}

/// The tenant with `spec.slug` (provisioned with `owner` when absent, reactivated when
/// suspended by an earlier session's experiments).
async fn ensure_tenant(
    tenantry: &Tenantry,
    spec: &TenantSpec,
    owner: Uuid,
) -> Result<(Uuid, String)> {
    let sa = tenantry
        .superadmin(SuperadminGrant {
            actor: "xtask-demo",
            reason: "seed the demo data",
            action: "demo.seed_tenant",
            scope: None,
        })
        .await?;
    let found = sa
        .list_tenants()
        .await?
        .into_iter()
        .find(|t| t.slug == spec.slug);
    let tenant = match found {
        Some(t) => {
            if t.status != "active" {
                sa.set_tenant_status(t.id, TenantStatus::Active).await?;
            }
            if t.isolation != spec.isolation.as_str() {
                tracing::warn!(
                    slug = spec.slug,
                    "kept as {} from an earlier run (moving between modes is not built yet; \
                     `cargo run -p migration -- fresh` reseeds)",
                    t.isolation
                );
            }
            t
        }
        None => {
            let new = NewTenant {
                name: spec.name.into(),
                slug: spec.slug.into(),
                plan: spec.plan.into(),
                region: "eu".into(),
                admin_email: Some(spec.owner.email.into()),
            };
            sa.provision_tenant_with(new, owner, spec.isolation)
                .await?
                .0
        }
    };
    sa.commit().await?;
    let isolation = match &tenant.schema_name {
        Some(schema) => format!("{} (schema {schema})", tenant.isolation),
        None => tenant.isolation.clone(),
    };
    Ok((tenant.id, isolation))
}

async fn ensure_project(tx: &TenantTx, spec: &ProjectSpec, owner: Uuid) -> service::Result<Uuid> {
    let existing = tx
        .select::<projects::Entity>()
        .filter(projects::Column::Name.eq(spec.name))
        .one(tx.conn())
        .await?;
    let project = match existing {
        Some(p) => p,
        None => {
            tx.insert(projects::ActiveModel {
                name: ActiveValue::Set(spec.name.into()),
                description: ActiveValue::Set(spec.description.into()),
                owner_id: ActiveValue::Set(Some(owner)),
                ..Default::default()
            })
            .await?
        }
    };
    for (title, body) in spec.documents {
        let found = tx
            .select::<documents::Entity>()
            .filter(documents::Column::ProjectId.eq(project.id))
            .filter(documents::Column::Title.eq(*title))
            .one(tx.conn())
            .await?;
        if found.is_none() {
            tx.insert(documents::ActiveModel {
                project_id: ActiveValue::Set(project.id),
                title: ActiveValue::Set((*title).into()),
                body: ActiveValue::Set((*body).into()),
                tags: ActiveValue::Set(vec!["demo".into()]),
                ..Default::default()
            })
            .await?;
        }
    }
    for (title, status) in spec.tasks {
        let found = tx
            .select::<tasks::Entity>()
            .filter(tasks::Column::ProjectId.eq(project.id))
            .filter(tasks::Column::Title.eq(*title))
            .one(tx.conn())
            .await?;
        if found.is_none() {
            tx.insert(tasks::ActiveModel {
                project_id: ActiveValue::Set(project.id),
                title: ActiveValue::Set((*title).into()),
                status: ActiveValue::Set((*status).into()),
                assignee_id: ActiveValue::Set(Some(owner)),
                ..Default::default()
            })
            .await?;
        }
    }
    Ok(project.id)
}

/// Rotates the live `demo` key, or issues one.
async fn fresh_key(tx: &TenantTx) -> service::Result<api_keys::IssuedApiKey> {
    let live = api_keys::list(tx)
        .await?
        .into_iter()
        .find(|k| k.name == DEMO_KEY && k.revoked_at.is_none());
    match live {
        Some(key) => api_keys::rotate(tx, key.id).await,
        None => {
            api_keys::issue(
                tx,
                NewApiKey {
                    name: DEMO_KEY.into(),
                    scopes: vec![],
                    expires_at: None,
                    rate_limit_per_minute: None,
                    monthly_quota: None,
                },
            )
            .await
        }
    }
}

/// Seeds (or finds) the sample data and issues a fresh key per tenant.
pub async fn seed(tenantry: &Tenantry) -> Result<Vec<SeededTenant>> {
    let hash = api::auth::password::hash_off_thread(DEMO_PASSWORD.into())
        .await
        .context("hashing the demo password")?;
    let mut out = Vec::new();
    for spec in TENANTS {
        let owner = ensure_user(tenantry, &spec.owner, &hash).await?;
        let (tenant, isolation) = ensure_tenant(tenantry, spec, owner).await?;
        let mut member_ids = Vec::new();
        for (email, name, role) in spec.members {
            let id = ensure_user(tenantry, &UserSpec { email, name }, &hash).await?;
            member_ids.push((id, *role));
        }
        // The owner's own membership is the authenticated source of the context.
        let ctx: TenantContext = tenantry
            .member_context(tenant, owner)
            .await
            .with_context(|| format!("acting as the owner of {}", spec.slug))?;
        let (issued, first_project) = tenantry
            .with_tenant(&ctx, async |tx| {
                let current = members::list(tx).await?;
                for (id, role) in &member_ids {
                    if !current.iter().any(|m| m.user_id == *id) {
                        members::add(tx, *id, *role).await?;
                    }
                }
                let mut first = None;
                for project in spec.projects {
                    let id = ensure_project(tx, project, owner).await?;
                    first.get_or_insert(id);
                }
                Ok((fresh_key(tx).await?, first))
            })
            .await
            .with_context(|| format!("seeding {}", spec.slug))?;
        out.push(SeededTenant {
            id: tenant,
            name: spec.name.into(),
            slug: spec.slug.into(),
            owner_email: spec.owner.email.into(),
            member_emails: spec
                .members
                .iter()
                .map(|(e, _, _)| (*e).to_owned())
                .collect(),
            key_secret: issued.secret,
            first_project,
            isolation,
        });
    }
    Ok(out)
}

fn banner(base: &str, seeded: &[SeededTenant], jwt_secret: &str, admin_token: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nTenantry demo API on {base}  (Ctrl-C stops it; the data stays for the next run)\n"
    );
    for t in seeded {
        let _ = writeln!(
            s,
            "{} ({}), tenant {}, isolation: {}",
            t.name, t.slug, t.id, t.isolation
        );
        let _ = writeln!(s, "  API key (new this run): {}", t.key_secret);
        let _ = writeln!(
            s,
            "  curl -s -H 'Authorization: Bearer {}' {base}/v1/projects",
            t.key_secret
        );
        let mut people = vec![format!("{} (owner)", t.owner_email)];
        people.extend(t.member_emails.iter().map(|e| format!("{e} (member)")));
        let _ = writeln!(s, "  people: {}\n", people.join(", "));
    }
    if let Some(t) = seeded.first() {
        let _ = writeln!(
            s,
            "Sign in as a person (every demo password is {DEMO_PASSWORD:?}):"
        );
        let _ = writeln!(
            s,
            "  curl -s -X POST {base}/v1/auth/login -H 'content-type: application/json' \\\n    -d '{{\"email\":\"{}\",\"password\":\"{DEMO_PASSWORD}\",\"tenant_id\":\"{}\"}}'",
            t.owner_email, t.id
        );
        let _ = writeln!(
            s,
            "  then: curl -s -H 'Authorization: Bearer <access_token>' {base}/v1/members\n"
        );
    }
    if let [a, b, ..] = seeded
        && let Some(project) = b.first_project
    {
        let _ = writeln!(
            s,
            "Isolation: {}'s key asking for a project of {} gets 404, as if it did not exist:",
            a.name, b.name
        );
        let _ = writeln!(
            s,
            "  curl -s -H 'Authorization: Bearer {}' {base}/v1/projects/{project}\n",
            a.key_secret
        );
    }
    let _ = writeln!(s, "Superadmin (every call is audited with its reason):");
    let _ = writeln!(
        s,
        "  curl -s -H 'Authorization: Bearer {admin_token}' -H 'X-Tenantry-Reason: trying the demo' {base}/admin/tenants\n"
    );
    let _ = writeln!(
        s,
        "OpenAPI: {base}/openapi.json   health: {base}/healthz   readiness: {base}/readyz"
    );
    let _ = writeln!(
        s,
        "TENANTRY_JWT_SECRET={jwt_secret}   (random for this run)"
    );
    let _ = writeln!(
        s,
        "TENANTRY_ADMIN_TOKEN={admin_token}   (random for this run)"
    );
    s
}

/// `cargo xtask demo`.
pub async fn run() -> Result<()> {
    let cluster = crate::db::demo().await?;
    let url = |role: LoginRole| cluster.url(role.login(), crate::db::DEV_DB);
    let tenantry = Tenantry::connect(
        TenantryConfig::new(url(LoginRole::App)).with_superadmin(url(LoginRole::Superadmin)),
    )
    .await
    .context("connecting the service to the dev cluster")?;
    let seeded = seed(&tenantry).await?;

    let jwt_secret = match std::env::var("TENANTRY_JWT_SECRET") {
        Ok(s) if !s.is_empty() => s,
        _ => random_hex(32)?,
    };
    let admin_token = match std::env::var("TENANTRY_ADMIN_TOKEN") {
        Ok(s) if !s.is_empty() => s,
        _ => random_hex(24)?,
    };
    let mut config = ApiConfig::from_lookup(|name| match name {
        "TENANTRY_JWT_SECRET" => Some(jwt_secret.clone()),
        "TENANTRY_ADMIN_TOKEN" => Some(admin_token.clone()),
        other => std::env::var(other).ok(),
    })?;
    // The demo has the owner's URL, which may read the migrations table.
    config
        .ready_database_url
        .get_or_insert_with(|| url(LoginRole::Owner));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "binding {} (set TENANTRY_LISTEN to use another address)",
                config.listen
            )
        })?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = api::build_app(AppState::new(tenantry.clone(), config));
    println!("{}", banner(&base, &seeded, &jwt_secret, &admin_token));
    api::serve(listener, app, api::shutdown_signal()).await?;
    tenantry.close().await?;
    println!("demo stopped; the dev cluster keeps running (`cargo xtask db stop` stops it)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeding twice reuses the data and replaces the keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeding_is_idempotent() -> Result<()> {
        let db = tenantry_tests::migrated_db().await?;
        let tenantry = Tenantry::connect(
            TenantryConfig::new(db.url(LoginRole::App))
                .with_superadmin(db.url(LoginRole::Superadmin)),
        )
        .await?;
        let first = seed(&tenantry).await?;
        let second = seed(&tenantry).await?;
        assert_eq!(first.len(), 3);
        let healthcare = second
            .iter()
            .find(|t| t.slug == "healthcare-co")
            .context("hc")?;
        assert!(
            healthcare.isolation.starts_with("dedicated (schema t_"),
            "{}",
            healthcare.isolation
        );
        assert!(second.iter().filter(|t| t.isolation == "shared").count() == 2);
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.id, b.id);
            assert_ne!(a.key_secret, b.key_secret);
            assert!(
                tenantry.authenticate_api_key(&a.key_secret).await.is_err(),
                "old key still works"
            );
            let principal = tenantry.authenticate_api_key(&b.key_secret).await?;
            assert_eq!(principal.context.tenant_id(), b.id);
            let spec = TENANTS.iter().find(|s| s.slug == b.slug).context("spec")?;
            let n = tenantry
                .with_tenant(&principal.context, async |tx| {
                    tx.count::<projects::Entity>(service::tx::all()).await
                })
                .await?;
            assert_eq!(n as usize, spec.projects.len());
        }
        let alice = tenantry
            .find_login("alice@acme.com")
            .await?
            .context("alice")?;
        let hash = alice.1.context("hash")?;
        assert!(api::auth::password::verify(DEMO_PASSWORD, &hash));
        let bob = tenantry.find_login("bob@acme.com").await?.context("bob")?;
        let ctx = tenantry.member_context(first[0].id, bob.0).await?;
        assert_eq!(ctx.role(), MemberRole::Member);
        assert!(
            tenantry.member_context(first[1].id, bob.0).await.is_err(),
            "bob is not in Tech Startup"
        );
        Ok(())
    }
}
