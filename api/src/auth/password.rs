//! Password hashes: argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane) in PHC strings.
//!
//! Hashing is deliberately slow, so both directions run on the blocking pool, and a login for
//! an unknown address still verifies against a dummy hash, so response times do not tell which
//! addresses exist.
//!
//! Sign-ins verify through a [`PasswordPool`]: a fixed number of permits (by default half the
//! machine's cores, so password work never takes more than half the CPU from other tenants).
//! A sign-in that finds every permit taken is refused at once (503 with `Retry-After`) rather
//! than queued: a queue of argon2 work is exactly what a flood builds.

use std::sync::{Arc, LazyLock};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The longest password accepted, in characters (argon2 takes any length; this bounds the
/// work to at most 4 KiB of input).
pub const MAX_PASSWORD_CHARS: usize = 1024;

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
///
/// A stored hash that cannot be verified (not a PHC string, not argon2, bad parameters) still
/// costs one verification, of [`DUMMY_HASH`]: otherwise such accounts would answer faster than
/// real ones and unknown addresses, and the response time would tell them apart.
pub fn verify(password: &str, phc: &str) -> bool {
    match check(password, phc) {
        Check::Match => true,
        Check::Mismatch => false,
        Check::Unverifiable => {
            dummy_verify(password);
            false
        }
    }
}

/// The outcome of one real verification attempt.
enum Check {
    Match,
    Mismatch,
    /// The hash was refused before any hashing work was done.
    Unverifiable,
}

fn check(password: &str, phc: &str) -> Check {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Check::Unverifiable;
    };
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Check::Match,
        Err(argon2::password_hash::Error::Password) => Check::Mismatch,
        Err(_) => Check::Unverifiable,
    }
}

/// Burns one verification's worth of time against [`DUMMY_HASH`].
fn dummy_verify(password: &str) {
    #[cfg(test)]
    DUMMY_VERIFICATIONS.with(|n| n.set(n.get() + 1));
    let _ = check(password, &DUMMY_HASH);
}

#[cfg(test)]
thread_local! {
    /// Dummy verifications run on this thread (tests assert the structure, never timing).
    static DUMMY_VERIFICATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A hash nobody's password matches, verified when there is no real one to keep timing even.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash("tenantry: no such user, this hash matches nothing useful").unwrap_or_default()
});

/// The bounded pool sign-ins verify passwords through.
#[derive(Clone)]
pub struct PasswordPool {
    permits: Arc<Semaphore>,
    size: usize,
}

/// The right to run one password verification; released when the work ends.
pub struct PasswordPermit {
    _held: OwnedSemaphorePermit,
}

impl PasswordPool {
    /// A pool of `size` concurrent verifications (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
        }
    }

    /// Half the machine's cores, at least one.
    pub fn default_size() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1)
    }

    /// How many verifications may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A permit, or `None` at once when every one is taken.
    pub fn try_acquire(&self) -> Option<PasswordPermit> {
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| PasswordPermit { _held: p })
    }
}

impl PasswordPermit {
    /// Verifies on the blocking pool while holding this permit (released when the hashing
    /// ends, even if the request that asked is gone); with no stored hash, burns the same time
    /// and says no.
    pub async fn verify(self, password: String, stored: Option<String>) -> bool {
        tokio::task::spawn_blocking(move || {
            let _held = self;
            match stored {
                Some(phc) => verify(&password, &phc),
                None => {
                    dummy_verify(&password);
                    false
                }
            }
        })
        .await
        .unwrap_or(false)
    }
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

    fn dummies() -> u64 {
        DUMMY_VERIFICATIONS.with(|n| n.get())
    }

    #[test]
    fn an_unverifiable_hash_still_verifies_the_dummy() {
        let real = hash("demo-password").unwrap();
        let before = dummies();
        assert!(verify("demo-password", &real));
        assert!(!verify("wrong", &real));
        assert_eq!(dummies(), before, "a real hash needs no dummy");
        // Not a PHC string, a PHC string of another algorithm, argon2 with unusable parameters.
        let pbkdf2 = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        let bad_params = "$argon2id$v=19$m=1,t=0,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        for stored in ["not a hash", "", pbkdf2, bad_params] {
            let before = dummies();
            assert!(!verify("demo-password", stored), "{stored}");
            assert_eq!(
                dummies(),
                before + 1,
                "no dummy verification for {stored:?}"
            );
        }
    }

    #[test]
    fn a_full_pool_refuses_at_once() {
        let pool = PasswordPool::new(2);
        let a = pool.try_acquire().unwrap();
        let _b = pool.try_acquire().unwrap();
        assert!(pool.try_acquire().is_none());
        drop(a);
        assert!(pool.try_acquire().is_some());
    }
}
