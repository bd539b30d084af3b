//! Finding the machine's PostgreSQL server binaries.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::HarnessError;

/// Where `initdb`, `pg_ctl`, `postgres` and `pg_dump` live.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    bindir: PathBuf,
}

impl PgBinaries {
    /// Locates the server binaries: `TENANTRY_PG_BINDIR` if set, else `pg_config --bindir`,
    /// else Debian's `/usr/lib/postgresql/15/bin`.
    pub fn locate() -> Result<Self, HarnessError> {
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::var_os("TENANTRY_PG_BINDIR") {
            candidates.push(PathBuf::from(dir));
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
            && out.status.success()
        {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
        candidates.push(PathBuf::from("/usr/lib/postgresql/15/bin"));
        Self::find_in(candidates)
    }

    /// The first of `candidates` holding `initdb`, `pg_ctl` and `postgres`.
    pub fn find_in(candidates: Vec<PathBuf>) -> Result<Self, HarnessError> {
        candidates
            .into_iter()
            .find(|dir| {
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|b| dir.join(b).is_file())
            })
            .map(|bindir| Self { bindir })
            .ok_or(HarnessError::MissingBinaries)
    }

    /// The path of one binary, e.g. `pg_dump`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// The directory holding the binaries.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binaries_name_the_package_to_install() {
        let err = PgBinaries::find_in(vec![PathBuf::from("/nonexistent/tenantry")]).err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.contains("apt-get install -y postgresql-15"),
            "{message}"
        );
    }
}
