//! `migration generate NAME`: a new migration file from a template, registered in the
//! migrator, as sea-orm-migration's `generate` does.
//!
//! Migrations are numbered, not timestamped (`m0008_name.rs` after `m0007_...`), like the rest
//! of ours. The new file is `src/m<next>_<name>.rs`; `src/lib.rs` gets `pub mod` and a
//! `Planned` entry at its two `// generate:` markers. Everything is checked before anything is
//! written, so bad input leaves the crate untouched.

use std::path::{Path, PathBuf};

/// The template of a new migration (a tenant-scoped table made with `TenantTable`).
const TEMPLATE: &str = include_str!("../templates/migration.rs.tmpl");
/// Where `pub mod` lines of new migrations go in `lib.rs`.
pub const MODULE_MARKER: &str = "// generate: new migration modules above this line";
/// Where `Planned` entries of new migrations go in `lib.rs`.
pub const ENTRY_MARKER: &str = "// generate: new migrations above this line";

/// Why `generate` refused.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The name is not a lowercase snake_case Rust identifier.
    #[error(
        "{0:?} is not a valid migration name: use lowercase letters, digits and `_`, starting with a letter (e.g. create_invoices); nothing was written"
    )]
    InvalidName(String),
    /// A migration with this name already exists.
    #[error("a migration named {name:?} already exists ({existing}); nothing was written")]
    Exists {
        /// The name given.
        name: String,
        /// The existing file.
        existing: String,
    },
    /// The directory is not a migration crate we can register in.
    #[error("{0}; nothing was written")]
    NotAMigrationCrate(String),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// What `generate` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The migration's name as recorded in `seaql_migrations` (and its module).
    pub module: String,
    /// The new file.
    pub file: PathBuf,
}

/// Checks `name`: lowercase snake_case, starting with a letter, at most 60 characters.
pub fn validate_name(name: &str) -> Result<(), GenerateError> {
    let ok = name.len() <= 60
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__");
    if ok {
        Ok(())
    } else {
        Err(GenerateError::InvalidName(name.into()))
    }
}

/// Writes `src/m<next>_<name>.rs` in the migration crate at `crate_dir` and registers it.
pub fn generate(crate_dir: &Path, name: &str) -> Result<Generated, GenerateError> {
    validate_name(name)?;
    let src = crate_dir.join("src");
    let lib_path = src.join("lib.rs");
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| GenerateError::Io { path, source }
    };
    if !lib_path.is_file() {
        return Err(GenerateError::NotAMigrationCrate(format!(
            "{} has no src/lib.rs: pass the migration crate's directory with -d",
            crate_dir.display()
        )));
    }
    let mut highest = 0u32;
    for entry in std::fs::read_dir(&src).map_err(io(&src))? {
        let file = entry.map_err(io(&src))?.file_name();
        let Some((number, existing)) = file.to_str().and_then(migration_file) else {
            continue;
        };
        if existing == name {
            return Err(GenerateError::Exists {
                name: name.into(),
                existing: src.join(&file).display().to_string(),
            });
        }
        highest = highest.max(number);
    }
    let module = format!("m{:04}_{name}", highest + 1);
    let lib = std::fs::read_to_string(&lib_path).map_err(io(&lib_path))?;
    let registered = register(&lib, &module)?;
    let file = src.join(format!("{module}.rs"));
    let text = render(&module, name);
    // The new file first, created exclusively; lib.rs last, so a failure leaves no reference
    // to a missing module.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
        .map_err(io(&file))?;
    if let Err(e) = std::fs::write(&lib_path, registered) {
        let _ = std::fs::remove_file(&file);
        return Err(io(&lib_path)(e));
    }
    Ok(Generated { module, file })
}

/// `m0007_permissions.rs` → `(7, "permissions")`.
fn migration_file(file: &str) -> Option<(u32, &str)> {
    let stem = file.strip_suffix(".rs")?.strip_prefix('m')?;
    let (digits, name) = stem.split_once('_')?;
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, name))
}

/// The template filled in: the table is the name without a leading `create_`.
pub fn render(module: &str, name: &str) -> String {
    let table = name.strip_prefix("create_").unwrap_or(name);
    TEMPLATE
        .replace("{{MODULE}}", module)
        .replace("{{NAME}}", name)
        .replace("{{TABLE}}", table)
}

/// `lib.rs` with the module declared and the migration appended to `planned()`.
pub fn register(lib: &str, module: &str) -> Result<String, GenerateError> {
    let mut out = String::with_capacity(lib.len() + 200);
    let (mut modules, mut entries) = (0, 0);
    for line in lib.split_inclusive('\n') {
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim() == MODULE_MARKER {
            modules += 1;
            out.push_str(&format!("{indent}pub mod {module};\n"));
        } else if line.trim() == ENTRY_MARKER {
            entries += 1;
            out.push_str(&format!(
                "{indent}Planned {{\n{indent}    name: \"{module}\",\n{indent}    plan: {module}::plan,\n{indent}    transactional: true,\n{indent}}},\n"
            ));
        }
        out.push_str(line);
    }
    if modules != 1 || entries != 1 {
        return Err(GenerateError::NotAMigrationCrate(format!(
            "src/lib.rs must contain the lines `{MODULE_MARKER}` and `{ENTRY_MARKER}` once each"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_snake_case_identifiers() {
        for good in ["create_invoices", "a", "add_x2"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Invoices",
            "2fast",
            "with-dash",
            "a b",
            "_x",
            "x_",
            "a__b",
            "ü",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn registers_at_both_markers() {
        let lib =
            format!("pub mod m0001_a;\n{MODULE_MARKER}\nvec![\n    x,\n    {ENTRY_MARKER}\n]\n");
        let out = register(&lib, "m0002_b").unwrap_or_default();
        assert!(out.contains("pub mod m0001_a;\npub mod m0002_b;\n// generate"));
        assert!(
            out.contains("    Planned {\n        name: \"m0002_b\",\n        plan: m0002_b::plan,")
        );
        assert!(register("no markers", "m0002_b").is_err());
    }

    #[test]
    fn parses_migration_file_names() {
        assert_eq!(
            migration_file("m0007_permissions.rs"),
            Some((7, "permissions"))
        );
        assert_eq!(migration_file("main.rs"), None);
        assert_eq!(migration_file("m07_x.rs"), None);
    }
}
