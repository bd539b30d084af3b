//! Access tokens: HS256 JWTs with `sub` (the user), `tid` (the tenant), `iat` and `exp`.
//!
//! A token only says who signed in, for which tenant; every request still checks the
//! membership (`member_context`), so a user who left the tenant, or a suspended tenant, stops
//! working at once rather than at expiry.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtSecret;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The tenant.
    pub tid: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Why a token was refused (never shown in detail to clients).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, expired, malformed claims.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// The keys and rules of access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenKeys {
    /// Keys from the configured secret; tokens live `ttl`.
    pub fn new(secret: &JwtSecret, ttl: Duration) -> Self {
        // Only HS256: a token announcing `none` or an asymmetric algorithm is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 30;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    /// How long a token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs a token for `user` in `tenant`.
    pub fn issue(&self, user: Uuid, tenant: Uuid) -> Result<String, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            tid: tenant,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies a token's signature, algorithm and expiry, and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(
            &JwtSecret::new(secret.as_bytes().to_vec()).unwrap(),
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn round_trip_and_refusals() {
        let k = keys("0123456789abcdef0123456789abcdef");
        let (u, t) = (Uuid::new_v4(), Uuid::new_v4());
        let token = k.issue(u, t).unwrap();
        let claims = k.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.tid), (u, t));
        assert!(
            keys("another-secret-of-enough-length-xx")
                .verify(&token)
                .is_err()
        );
        assert!(k.verify("not.a.token").is_err());
        // An expired token.
        let old = Claims {
            sub: u,
            tid: t,
            iat: 1,
            exp: 2,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &old,
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(k.verify(&expired).is_err());
        // Another algorithm with the same key.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                sub: u,
                tid: t,
                iat: 1,
                exp: i64::MAX / 2,
            },
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert!(k.verify(&hs512).is_err());
    }
}
