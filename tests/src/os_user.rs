//! Running PostgreSQL's binaries as a non-root user.
//!
//! `initdb` and `postgres` refuse to run as root. When we are root, every server command
//! runs as the `postgres` system user through `runuser`, and the cluster's directory is
//! handed to that user first.

use std::path::Path;
use std::process::Command;

use crate::HarnessError;

/// Who runs the server processes.
#[derive(Debug, Clone)]
pub enum ServerUser {
    /// We are not root: run the binaries directly.
    Current,
    /// We are root: run them as this system user (uid, gid).
    System {
        /// The user's name, for `runuser -u`.
        name: String,
        /// Its uid.
        uid: u32,
        /// Its primary gid.
        gid: u32,
    },
}

impl ServerUser {
    /// Decides who runs the server: ourselves, or `postgres` when we are root.
    pub fn detect() -> Result<Self, HarnessError> {
        if current_uid()? != 0 {
            return Ok(Self::Current);
        }
        let uid = id_of("-u")?;
        let gid = id_of("-g")?;
        Ok(Self::System {
            name: "postgres".into(),
            uid,
            gid,
        })
    }

    /// A command for `program` that runs as the server user.
    pub fn command(&self, program: &Path) -> Command {
        match self {
            Self::Current => Command::new(program),
            Self::System { name, .. } => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", name, "--"]).arg(program);
                cmd
            }
        }
    }

    /// Gives `path` to the server user (no-op when we are that user).
    pub fn take_ownership(&self, path: &Path) -> Result<(), HarnessError> {
        if let Self::System { uid, gid, .. } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| HarnessError::Io(format!("chown {}: {e}", path.display())))?;
        }
        Ok(())
    }
}

fn current_uid() -> Result<u32, HarnessError> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| HarnessError::Io(format!("id -u: {e}")))?;
    parse_id(&out.stdout)
}

fn id_of(flag: &str) -> Result<u32, HarnessError> {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .map_err(|e| HarnessError::Io(format!("id {flag} postgres: {e}")))?;
    if !out.status.success() {
        return Err(HarnessError::NoPostgresUser);
    }
    parse_id(&out.stdout)
}

fn parse_id(bytes: &[u8]) -> Result<u32, HarnessError> {
    String::from_utf8_lossy(bytes)
        .trim()
        .parse()
        .map_err(|e| HarnessError::Io(format!("unreadable id: {e}")))
}
