//! Password hashes: argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane) in PHC strings.
//!
//! Hashing is deliberately slow, so both directions run on the blocking pool, and a login for
//! an unknown address still verifies against a dummy hash, so response times do not tell which
//! addresses exist.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The system's random source failed.
    #[error("no randomness for a salt: {0}")]
    Random(String),
    /// The hasher refused the input.
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// Hashes `password` with a fresh random salt, as a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed hash).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash nobody's password matches, verified when there is no real one to keep timing even.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash("tenantry: no such user, this hash matches nothing useful").unwrap_or_default()
});

/// Verifies on the blocking pool; with no stored hash, burns the same time and says no.
pub async fn verify_off_thread(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match stored {
        Some(phc) => verify(&password, &phc),
        None => {
            let _ = verify(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// Hashes on the blocking pool.
pub async fn hash_off_thread(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("demo-password").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("demo-password", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("demo-password", "not a hash"));
    }
}
