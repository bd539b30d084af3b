//! `migration generate NAME` in a scratch copy of our migration crate: bad names and existing
//! names are refused with nothing written; a good name writes a migration from the template
//! and registers it; the copy builds (no warnings) and its binary applies the new migration to
//! a real PostgreSQL, leaving a tenant-scoped table with forced row level security, and rolls
//! it back.
//!
//! The copy builds into the shared target directory, so only the copied crate itself is
//! compiled (about 20 s here), not its dependencies.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{Context, bail};
use common::{applied, run_cli, scalar_i64};
use tenantry_tests::logins::LoginRole;

/// The workspace root (the tests crate is one of its members).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .context("test executable is not in <target>/<profile>/deps")
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

/// A workspace holding only a copy of `migration/`, with our profiles and dependency versions
/// (so the shared target directory's dependency artifacts are reused), renamed so it never
/// replaces the real `migration` crate's artifacts or binary there.
fn scratch_workspace(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let root = workspace();
    copy_dir(&root.join("migration"), &dir.join("migration"))?;
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let manifest: String = manifest
        .lines()
        .map(|l| {
            if l.starts_with("members") {
                "members = [\"migration\"]"
            } else {
                l
            }
        })
        // Path dependencies of the other members do not exist in the copy; the kit is used where
        // it is (outside the copy, so it is not a member whose artifacts the copy would share).
        .filter(|l| !l.contains("{ path = ") || l.starts_with("migration-kit "))
        .map(|l| {
            if l.starts_with("migration-kit ") {
                format!(
                    "migration-kit = {{ path = {:?} }}\n",
                    root.join("migration-kit").display().to_string()
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    let crate_manifest = dir.join("migration/Cargo.toml");
    let text = std::fs::read_to_string(&crate_manifest)?;
    // A package of its own (the library keeps its crate name `migration`): cargo names
    // artifacts of a workspace member by package name and path relative to the workspace, so
    // a copy named `migration` would overwrite the real crate's artifacts.
    let renamed = text
        .replacen(
            "[package]\nname = \"migration\"",
            "[package]\nname = \"tenantry-generate-scratch\"",
            1,
        )
        .replacen(
            "[[bin]]\nname = \"migration\"",
            "[[bin]]\nname = \"migration-scratch\"",
            1,
        );
    if !renamed.contains("tenantry-generate-scratch") || !renamed.contains("migration-scratch\"") {
        bail!("migration/Cargo.toml: cannot rename the package and its binary in the copy");
    }
    std::fs::write(&crate_manifest, renamed)?;
    Ok(dir.join("migration"))
}

/// Runs the scratch copy's binary; fails with its stderr unless it exits 0.
fn scratch_cli(bin: &Path, url: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Process::new(bin)
        .args(args)
        .env("DATABASE_URL", url)
        .output()?;
    if !out.status.success() {
        bail!(
            "migration-scratch {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn listing(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("src"))? {
        let path = entry?.path();
        if path.is_file() {
            out.push((path.display().to_string(), std::fs::read_to_string(&path)?));
        }
    }
    out.sort();
    Ok(out)
}

#[tokio::test]
async fn generate_writes_builds_and_applies_a_migration() -> anyhow::Result<()> {
    let target = target_dir()?;
    let scratch = scratch_workspace(&target.join("generate-scratch"))?;
    let dir = scratch.display().to_string();
    let untouched = listing(&scratch)?;

    for (name, says) in [
        ("Create-Invoices", "is not a valid migration name"),
        ("2invoices", "is not a valid migration name"),
        ("permissions", "already exists"),
    ] {
        let run = run_cli("", &["generate", name, "-d", &dir])?;
        assert!(!run.success, "generate {name} succeeded");
        assert!(
            run.stderr.contains(says) && run.stderr.contains("nothing was written"),
            "generate {name}: {}",
            run.stderr
        );
        assert_eq!(
            listing(&scratch)?,
            untouched,
            "generate {name} wrote something"
        );
    }

    let run = run_cli("", &["generate", "create_invoices", "-d", &dir])?;
    assert!(run.success, "generate failed: {}", run.stderr);
    let module = run
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with('m') && w.ends_with("_create_invoices"))
        .context("generate did not say which module it registered")?
        .to_string();
    assert!(scratch.join(format!("src/{module}.rs")).is_file());
    let lib = std::fs::read_to_string(scratch.join("src/lib.rs"))?;
    assert!(lib.contains(&format!("pub mod {module};")));
    assert!(lib.contains(&format!("plan: {module}::plan,")));
    let again = run_cli("", &["generate", "create_invoices", "-d", &dir])?;
    assert!(
        !again.success && again.stderr.contains("already exists"),
        "{}",
        again.stderr
    );

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = scratch.join("../Cargo.toml");
    let build = Process::new(cargo)
        .args(["build", "--offline", "--manifest-path"])
        .arg(&manifest)
        .args([
            "-p",
            "tenantry-generate-scratch",
            "--bin",
            "migration-scratch",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .context("running cargo build on the scratch copy")?;
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "scratch build failed:\n{stderr}");
    // Our profiles name packages (argon2) the copy does not use: cargo warns about those.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && !l.contains("profile package spec"))
        .collect();
    assert!(
        warnings.is_empty(),
        "the generated migration builds with warnings:\n{stderr}"
    );
    let bin = target.join("debug/migration-scratch");

    let db = tenantry_tests::empty_db().await?;
    let url = db.url(LoginRole::Owner);
    scratch_cli(&bin, &url, &["up"])?;
    let su = db.connect_superuser().await?;
    assert_eq!(applied(&su).await?.last(), Some(&module));
    let forced = scalar_i64(
        &su,
        "SELECT count(*) FROM pg_class WHERE oid = 'public.invoices'::regclass \
         AND relrowsecurity AND relforcerowsecurity",
    )
    .await?;
    assert_eq!(forced, 1, "public.invoices is not under forced RLS");
    let key = scalar_i64(
        &su,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.invoices'::regclass \
         AND contype = 'p' AND array_length(conkey, 1) = 2",
    )
    .await?;
    assert_eq!(key, 1, "the key is not (tenant_id, id)");

    scratch_cli(&bin, &url, &["down", "-n", "1"])?;
    let left = scalar_i64(
        &su,
        "SELECT count(*) FROM pg_class WHERE relname = 'invoices'",
    )
    .await?;
    assert_eq!(left, 0, "down left the table behind");
    su.close().await?;
    Ok(())
}
